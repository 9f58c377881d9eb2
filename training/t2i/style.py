"""The style encoder S(x) of GAN-INT-CLS (Reed et al. 2016, section 4.4): an image -> the generator noise z.

Trained on the shipped generator's own images: z ~ N(0, I), a training caption's embedding phi(t), x = G(z, phi(t)),
and L_style = ||z - S(x)||^2. G is the exported ONNX file run by ONNX Runtime (no gradient goes through it), so
S learns exactly the generator the service serves, whatever its architecture (for LAPGAN, the coarse level's z;
the detail maps are drawn at random). At serving time z = S(style image), then G(z, phi(prompt)): the pose and
background of the style image with the prompt's content.

Checked on held-out captions (the 20 held-out classes, never seen by G or S): mean cosine(S(G(z, t)), z).
Run directory as for the other trainers: config.json, ckpt.pt (resumable), stats.jsonl, train.log.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from training.t2i import data as t2i_data
from training.t2i.config import StyleConfig
from training.t2i.evaluate import OnnxGenerator

OPSET = 17


class StyleEncoder(nn.Module):
    """[N,3,64,64] in [0,1] -> [N,z_dim]: strided convolutions 64 -> 4 with BatchNorm, then a linear layer."""

    def __init__(self, z_dim: int = 100, width: int = 32) -> None:
        super().__init__()
        self.z_dim, self.width = z_dim, width
        layers: list[nn.Module] = []
        cin = 3
        for i in range(4):
            cout = width * 2**i
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin * 16, z_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image * 2 - 1).flatten(1))


def caption_pools(cfg: StyleConfig, card: dict) -> tuple[np.ndarray, np.ndarray]:
    """Caption embeddings of the generator's training classes (train split) and of its held-out classes."""
    ds = t2i_data.load(cfg.data, card.get("training", {}).get("attr_per_image", 3), 0, cfg.limit or None)
    emb = t2i_data.embed_cached(ds.texts, cfg.encoder, cfg.cache)
    heldout = card["heldout_classes"]
    cls, split = ds.class_ids[ds.text_image], ds.split[ds.text_image]
    seen = ~np.isin(cls, heldout) & (split == "train")
    held = np.isin(cls, heldout)
    if not seen.any() or not held.any():
        raise ValueError(f"{cfg.data} has no captions of the generator's {'held-out' if seen.any() else 'seen'} classes")
    return emb[seen], emb[held]


def draw(gen: OnnxGenerator, emb_pool: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(images [n,3,64,64] in [0,1], their z [n,z_dim]): G on random z and captions of the pool."""
    z = rng.standard_normal((n, gen.z_dim)).astype(np.float32)
    e = emb_pool[rng.integers(len(emb_pool), size=n)]
    return gen.run(e, z, rng), z


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def torch_encoder(s: StyleEncoder) -> Callable[[np.ndarray], np.ndarray]:
    """S in eval mode as images [N,3,64,64] in [0,1] -> noise [N,z_dim], numpy in and out."""
    s.eval()

    @torch.no_grad()
    def encode(x: np.ndarray) -> np.ndarray:
        return s(torch.from_numpy(x)).numpy()

    return encode


def evaluate(encode: Callable[[np.ndarray], np.ndarray], gen: OnnxGenerator, emb_pool: np.ndarray, n: int, seed: int) -> dict:
    """Mean and 10th percentile of cosine(S(G(z, t)), z), and the MSE, on ``n`` fixed draws; ``encode`` is S
    (``torch_encoder`` of the net in training, the exported file's session at export)."""
    rng = np.random.default_rng(seed)
    cos, mse = [], []
    for i in range(0, n, 200):
        x, z = draw(gen, emb_pool, min(200, n - i), rng)
        pred = encode(x)
        cos.append(cosine(pred, z))
        mse.append(((pred - z) ** 2).mean(1))
    c = np.concatenate(cos)
    return {"items": n, "cosine_mean": round(float(c.mean()), 4), "cosine_p10": round(float(np.percentile(c, 10)), 4),
            "mse": round(float(np.concatenate(mse).mean()), 4)}


def train(cfg: StyleConfig, resume: bool = False, progress: bool = False) -> Path:
    """Train (or resume) the run on the scaffold (one process); returns best.pt, the highest held-out cosine."""
    from training.run import Run, describe_device, log

    run = Run(cfg.run_dir, threads=cfg.threads, seed=cfg.seed, progress=progress, processes=False)
    device = run.device
    card = json.loads(Path(cfg.generator).with_suffix(".json").read_text())
    gen = OnnxGenerator(cfg.generator, cfg.threads)
    seen, held = caption_pools(cfg, card)
    s = StyleEncoder(gen.z_dim, cfg.width).to(device)
    opt = torch.optim.Adam(s.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.01)
    rng = np.random.default_rng(cfg.seed)
    run.track(s=s, opt=opt, sched=sched, rng=rng)
    if run.begin({"trainer": "style", "train": asdict(cfg)}, resume):
        sched.T_max = cfg.steps  # a resume may shorten or lengthen the run: the schedule ends with it
    log.info("style encoder for %s (z %d): %d params, %d seen / %d held-out captions, device %s", cfg.generator, gen.z_dim,
             sum(p.numel() for p in s.parameters()), len(seen), len(held), describe_device(device))

    def step_fn(step: int) -> dict[str, float]:
        s.train()
        x, z = draw(gen, seen, cfg.batch, rng)
        loss = F.mse_loss(s(torch.from_numpy(x).to(device)), torch.from_numpy(z).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": loss.item()}

    def validated() -> dict[str, float]:
        val = evaluate(torch_encoder(s), gen, held, min(cfg.eval_items, 400), cfg.seed + 1)
        return {"val_cosine": val["cosine_mean"], "val_cosine_p10": val["cosine_p10"], "val_mse": val["mse"]}

    def report(rec: dict) -> str | None:
        if "val_cosine" not in rec:
            return None
        return (f"loss {rec['loss']:.4f} | held-out cosine {rec['val_cosine']:.4f} (best {run.best['val_cosine']:.4f}) | "
                f"{rec['steps_per_s']:.2f} steps/s")

    def exportable() -> dict:
        return {"s": s.state_dict(), "train_config": asdict(cfg), "net_config": {"z_dim": gen.z_dim, "width": cfg.width},
                "device": describe_device(device)}

    run.fit(cfg.steps, step_fn, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every, exportable=exportable,
            val_every=cfg.ckpt_every, validate=validated, keep_best=("val_cosine", "max"), report=report)
    return run.best_path


STYLE_CAPTIONS = [
    "this flower has bright yellow petals and a dark center",
    "a flower with large red petals",
    "this flower has white petals and a yellow center",
    "this flower has purple petals with thin stamen",
    "an orange flower with many thin petals",
]


def write_style_grid(style_onnx: str | Path, cfg: StyleConfig, path: str | Path, rows: int = 6, seed: int = 0) -> Path:
    """Rows: style images (real test-split photos of held-out classes, then images the generator made), each
    shown first; columns: captions drawn with z = S(style image). 2x nearest enlargement."""
    import onnxruntime as ort
    from PIL import Image, ImageDraw

    sess = ort.InferenceSession(str(style_onnx), providers=["CPUExecutionProvider"])
    gen = OnnxGenerator(cfg.generator, cfg.threads)
    card = json.loads(Path(cfg.generator).with_suffix(".json").read_text())
    ds = t2i_data.load(cfg.data, card.get("training", {}).get("attr_per_image", 3), 0, cfg.limit or None)
    rng = np.random.default_rng(seed)
    held = np.flatnonzero(np.isin(ds.class_ids, card["heldout_classes"]))
    real = ds.images[rng.choice(held, size=rows // 2, replace=False)]
    made = t2i_data.to_uint8(gen.run(t2i_data.embed_cached(STYLE_CAPTIONS[: rows - rows // 2], cfg.encoder, cfg.cache),
                                     rng.standard_normal((rows - rows // 2, gen.z_dim)).astype(np.float32), rng))
    styles = np.concatenate([real, made])
    z = sess.run(None, {"image": styles.transpose(0, 3, 1, 2).astype(np.float32) / 255})[0]
    emb = t2i_data.embed_cached(STYLE_CAPTIONS, cfg.encoder, cfg.cache)
    cell, pad, head = 128, 4, 70
    sheet = Image.new("RGB", ((len(STYLE_CAPTIONS) + 1) * (cell + pad) + pad, head + len(styles) * (cell + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 8), "style image", fill="black")
    for c, text in enumerate(STYLE_CAPTIONS):
        words, lines, line = text.split(), [], ""
        for w in words:
            if len(line) + len(w) > 20:
                lines.append(line)
                line = ""
            line = f"{line} {w}".strip()
        draw.multiline_text(((c + 1) * (cell + pad) + pad, 8), "\n".join(lines + [line]), fill="black", spacing=2)
    for r, (style, zr) in enumerate(zip(styles, z)):
        y = head + r * (cell + pad)
        sheet.paste(Image.fromarray(style).resize((cell, cell), Image.NEAREST), (pad, y))
        imgs = t2i_data.to_uint8(gen.run(emb, np.repeat(zr[None], len(emb), 0), np.random.default_rng(seed)))
        for c, im in enumerate(imgs):
            sheet.paste(Image.fromarray(im).resize((cell, cell), Image.NEAREST), ((c + 1) * (cell + pad) + pad, y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


class _Exported(nn.Module):
    def __init__(self, s: StyleEncoder) -> None:
        super().__init__()
        self.s = s

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.s(image)


def export(run: str | Path, out_dir: str | Path = "models", name: str = "", notes: str = "", threads: int = 1,
           grid: str | Path | None = None) -> dict:
    """Export the run's best S to NAME.onnx (input ``image`` [N,3,64,64] RGB in [0,1], output ``noise`` [N,z_dim]),
    re-measure it from the file on seen and held-out captions, write the card."""
    import onnxruntime as ort

    from training.export import training_summary, write_card

    run, out_dir = Path(run), Path(out_dir)
    ck = torch.load(run / "ckpt.pt", map_location="cpu", weights_only=False)
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    cfg = StyleConfig(**ck["train_config"])
    gen_card = json.loads(Path(cfg.generator).with_suffix(".json").read_text())
    name = name or f"style-{gen_card['name']}"
    s = StyleEncoder(**ck["net_config"])
    s.load_state_dict(best["s"])
    s.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.onnx"
    example = torch.rand(2, 3, 64, 64)
    torch.onnx.export(_Exported(s).eval(), (example,), str(path), input_names=["image"], output_names=["noise"],
                      dynamic_axes={"image": {0: "batch"}, "noise": {0: "batch"}}, opset_version=OPSET, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(8, 3, 64, 64)
    with torch.no_grad():
        parity = float(np.abs(sess.run(None, {"image": x.numpy()})[0] - s(x).numpy()).max())
    if parity > 1e-4:
        raise RuntimeError(f"ONNX/PyTorch parity failed: max abs diff {parity:.2e}")

    def from_file(x: np.ndarray) -> np.ndarray:  # the evaluation runs the exported file
        return sess.run(None, {"image": x})[0]

    gen = OnnxGenerator(cfg.generator, threads)
    seen, held = caption_pools(cfg, gen_card)
    metrics = {"heldout_classes": evaluate(from_file, gen, held, cfg.eval_items, cfg.seed + 2),
               "seen_classes": evaluate(from_file, gen, seen, cfg.eval_items, cfg.seed + 3),
               "what": "cosine(S(G(z, t)), z) and MSE for z ~ N(0, I) and captions of the held-out (never trained on) "
                       "and seen classes; G is the generator file"}
    training = training_summary(ck, run)
    training["best_step"] = best["step"]
    card = {
        "name": name,
        "task": "style-encoder",
        "generator": gen_card["name"],
        "generator_sha256": gen_card["onnx"]["sha256"],
        "size": 64,
        "z_dim": gen.z_dim,
        "description": (f"Style encoder S(x) for {gen_card['name']} (GAN-INT-CLS, Reed et al. 2016): an image -> the noise z "
                        "that makes the generator draw the prompt's content with that image's pose, layout and background. "
                        "Trained on the generator's own images with L_style = ||z - S(G(z, phi(t)))||^2."),
        "arch": "style-encoder",
        "net_config": ck["net_config"],
        "params": sum(p.numel() for p in s.parameters()),
        "inputs": [{"name": "image", "dtype": "float32", "shape": ["N", 3, 64, 64], "range": [0, 1], "color": "RGB",
                    "note": "the style image resized to 64x64"}],
        "outputs": [{"name": "noise", "dtype": "float32", "shape": ["N", gen.z_dim], "note": "the generator's noise input"}],
        "metrics": metrics,
        "training": training,
        "parity_max_abs_diff": parity,
        "onnx": {"file": path.name, "opset": OPSET},
        "created": dt.date.today().isoformat(),
        "notes": notes,
    }
    write_card(path, card)
    if grid:
        write_style_grid(path, cfg, grid)
    return card
