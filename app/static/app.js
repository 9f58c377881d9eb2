// The page's behaviour: tabs, uploads, calls to the API, and showing results or errors. No dependencies.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

// ---- tabs (WAI-ARIA tabs pattern: arrow keys move between tabs) -------------------------------------
const tabs = [...document.querySelectorAll("[role=tab]")];
function selectTab(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
}
tabs.forEach((tab) => {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (e) => {
    const shown = tabs.filter((t) => !t.hidden);  // tabs for tools this server lacks are hidden
    const i = shown.indexOf(tab);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (step) selectTab(shown[(i + step + shown.length) % shown.length]);
    if (e.key === "Home") selectTab(shown[0]);
    if (e.key === "End") selectTab(shown[shown.length - 1]);
  });
});

// ---- errors and progress ----------------------------------------------------------------------------
async function errorText(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON */ }
  if (resp.status === 503) {
    const after = resp.headers.get("Retry-After");
    return `The server is busy right now${after ? `; try again in ${after} s` : "; try again shortly"}. (${message})`;
  }
  if (resp.status === 413) return `Too large: ${message}`;
  if (resp.status === 415) return `Not a supported image: ${message}`;
  if (resp.status === 404 || resp.status === 405) return `Not available on this server: ${message}`;
  return message;
}

function busy(statusEl, form, label) {
  const started = performance.now();
  const bar = document.createElement("progress");
  const text = document.createElement("span");
  statusEl.className = "status";
  statusEl.replaceChildren(bar, text);
  const tick = () => { text.textContent = `${label}… ${((performance.now() - started) / 1000).toFixed(1)} s`; };
  tick();
  const timer = setInterval(tick, 100);
  form.querySelector("button[type=submit]").disabled = true;
  return () => { clearInterval(timer); form.querySelector("button[type=submit]").disabled = false; };
}

function fail(statusEl, message) {
  statusEl.className = "status error";
  statusEl.textContent = message;
}

async function call(url, options, statusEl, form, label) {
  const done = busy(statusEl, form, label);
  try {
    const resp = await fetch(url, options);
    if (!resp.ok) { fail(statusEl, await errorText(resp)); return null; }
    statusEl.textContent = "";
    return resp;
  } catch (e) {
    fail(statusEl, `Could not reach the server: ${e.message}`);
    return null;
  } finally {
    done();
  }
}

const humanBytes = (n) => (n > 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);
const EXT = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp" };
const urls = new Map();  // one object URL per slot, revoked when replaced
function objectUrl(slot, blob) {
  if (urls.has(slot)) URL.revokeObjectURL(urls.get(slot));
  const u = URL.createObjectURL(blob);
  urls.set(slot, u);
  return u;
}

// POST one image file as multipart; the response and its body, or null after showing the error.
async function postImage(url, file, statusEl, form, label) {
  const body = new FormData();
  body.append("image", file);
  const resp = await call(url, { method: "POST", body }, statusEl, form, label);
  return resp && { resp, blob: await resp.blob() };
}

// Point a download link at a result, named after the uploaded file plus a suffix.
function offerDownload(link, href, file, suffix, blob) {
  link.href = href;
  link.download = `${file.name.replace(/\.[^.]+$/, "")}${suffix}.${EXT[blob.type] || "img"}`;
}

// ---- file drop zones ---------------------------------------------------------------------------------
for (const zone of document.querySelectorAll(".drop")) {
  const input = $("input[type=file]", zone);
  const label = $("span", zone);
  const show = () => { if (input.files.length) label.textContent = input.files[0].name; };
  input.addEventListener("change", show);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragover"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragover"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragover");
    if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; show(); }
  });
}

// ---- models: fill the model list; offer `faces` and text to image only where their models are loaded ------
fetch("/v1/models").then((r) => r.json()).then(({ models }) => {
  const select = $("#upscale-form select[name=model]");
  for (const m of models.filter((m) => m.task === "super-resolution")) {
    const opt = new Option(`${m.name} (x${m.scale}${m.domain ? `, ${m.domain}` : ""})`, m.name);
    opt.title = m.description || "";
    select.add(opt);
  }
  $("#faces-option").hidden = !models.some((m) => m.domain === "faces");
  $("#tab-t2i").hidden = !models.some((m) => m.task === "text-to-image");
  $("#t2i-generator").hidden = !models.some((m) => m.task === "text-to-image" && m.arch === "lapgan");
  $("#t2i-style").hidden = !models.some((m) => m.task === "style-encoder");
}).catch(() => {});

// ---- upscale -----------------------------------------------------------------------------------------
const slider = $("#slider");
slider.addEventListener("input", () => { $("#after-clip").style.clipPath = `inset(0 0 0 ${slider.value}%)`; });

$("#upscale-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  const data = new FormData(form);
  const file = data.get("image");
  const params = new URLSearchParams();
  for (const k of ["model", "scale", "format"]) if (data.get(k)) params.set(k, data.get(k));
  if (data.get("model")) params.delete("scale");  // the model decides its scale
  if (data.get("faces")) params.set("faces", "true");
  const got = await postImage(`/upscale?${params}`, file, $("#upscale-status"), form, "Upscaling");
  if (!got) return;
  const { resp, blob } = got;
  const after = $("#after");
  after.src = objectUrl("after", blob);
  $("#before").src = objectUrl("before", file);
  await after.decode().catch(() => {});
  const ms = resp.headers.get("X-Processing-Time-Ms");
  $("#upscale-meta").textContent = `${resp.headers.get("X-Model")}: ${resp.headers.get("X-Input-Size")} → ` +
    `${resp.headers.get("X-Output-Size")}, ${humanBytes(blob.size)}, ${ms ? (ms / 1000).toFixed(2) : "?"} s on the server` +
    (resp.headers.has("X-Faces-Enhanced") ? `, ${resp.headers.get("X-Faces-Enhanced")} face(s) enhanced` : "");
  offerDownload($("#upscale-download"), after.src, file, `_x${resp.headers.get("X-Scale")}`, blob);
  $("#upscale-result").hidden = false;
});

// ---- degrade -----------------------------------------------------------------------------------------
$("#degrade-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  const data = new FormData(form);
  const file = data.get("image");
  const params = new URLSearchParams({ method: data.get("method"), scale: data.get("scale") });
  if (data.get("method") === "pipeline") params.set("strength", data.get("strength"));
  if (data.get("seed") !== "") params.set("seed", data.get("seed"));
  const got = await postImage(`/degrade?${params}`, file, $("#degrade-status"), form, "Degrading");
  if (!got) return;
  const { resp, blob } = got;
  const img = $("#degraded");
  img.src = objectUrl("degraded", blob);
  $("#degrade-meta").textContent = `${resp.headers.get("X-Model")}, seed ${resp.headers.get("X-Seed")}: ` +
    `${resp.headers.get("X-Input-Size")} → ${resp.headers.get("X-Output-Size")}, ${humanBytes(blob.size)}`;
  offerDownload($("#degrade-download"), img.src, file, `_degraded_seed${resp.headers.get("X-Seed")}`, blob);
  $("#degrade-result").hidden = false;
});

// ---- text to image -----------------------------------------------------------------------------------
$("#t2i-form select[name=generator]").addEventListener("change", (e) => {
  for (const el of document.querySelectorAll("#t2i-form .lapgan-only")) el.hidden = e.target.value !== "lapgan";
});

$("#t2i-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  const data = new FormData(form);
  const req = { prompt: data.get("prompt"), n: Number(data.get("n")), size: Number(data.get("size")), format: "png" };
  if (data.get("seed") !== "") req.seed = Number(data.get("seed"));
  const lapgan = data.get("generator") === "lapgan";
  if (lapgan) {
    req.generator = "lapgan";
    if (data.get("detail_seed") !== "") req.detail_seed = Number(data.get("detail_seed"));
    if (data.get("vary")) req.vary = "detail";
  }
  const style = data.get("style_image");
  let init;
  if (style && style.size) {  // a style image goes as a file in a multipart form, the other fields beside it
    const body = new FormData();
    for (const [k, v] of Object.entries(req)) body.append(k, String(v));
    body.append("style_image", style);
    init = { method: "POST", body };
  } else {
    init = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(req) };
  }
  const resp = await call("/text-to-image", init, $("#t2i-status"), form, "Generating");
  if (!resp) return;
  let images, seeds;
  if ((resp.headers.get("Content-Type") || "").startsWith("application/json")) {
    const body = await resp.json();
    images = body.images.map((b64) => `data:${body.media_type};base64,${b64}`);
    seeds = body.seeds.map((s, i) => (body.detail_seeds ? `${s} detail ${body.detail_seeds[i]}` : `${s}`));
  } else {
    images = [objectUrl("t2i", await resp.blob())];
    const detail = resp.headers.get("X-Detail-Seed");
    seeds = [resp.headers.get("X-Seed") + (detail ? ` detail ${detail}` : "")];
  }
  const ms = resp.headers.get("X-Processing-Time-Ms");
  const upscaler = resp.headers.get("X-Upscaler");
  $("#t2i-meta").textContent = `${resp.headers.get("X-Model")}${upscaler ? ` + ${upscaler}` : ""}: ` +
    `${images.length} × ${req.size} px, ${ms ? (ms / 1000).toFixed(2) : "?"} s on the server`;
  const grid = $("#t2i-grid");
  grid.replaceChildren(...images.map((src, i) => {
    const fig = document.createElement("figure");
    const img = new Image();
    img.src = src;
    img.alt = `${req.prompt} (seed ${seeds[i]})`;
    const cap = document.createElement("figcaption");
    const link = document.createElement("a");
    link.href = src;
    link.download = `text-to-image_seed${seeds[i].replace(" detail ", "_detail")}.png`;
    link.textContent = "download";
    cap.append(`seed ${seeds[i]} · `, link);
    fig.append(img, cap);
    return fig;
  }));
});
