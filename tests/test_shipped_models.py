"""The models in models/: their cards, their quality bars, and the real service running them.

Quality numbers are re-measured here from the ONNX files (Set5), so a card cannot drift from its file.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from PIL import Image

from tests.helpers import ROOT, SHARED, ServerProcess

MODELS = ROOT / "models"
BARS = {  # Y-PSNR on Set5 / Set14 of the shipped efficient nets, at most 0.7 MFLOP per input pixel: above the 4x
    # costlier SRResNets they replaced (31.36 / 28.12, 37.29 / 32.89), 0.02 dB under the shipped files. sr-x2 meets
    # issue 18's x2 target (37.5 / 33.0: the file gives 37.514 / 33.101); sr-x4 (31.503 / 28.192) is short of its
    # 31.6 / 28.25 and trains on across sessions (--init models/NAME.onnx).
    "sr-x4": {"Set5": 31.48, "Set14": 28.17},
    "sr-x2": {"Set5": 37.49, "Set14": 33.08},
}
MAX_FLOPS_PER_PIXEL = 700_000
INT8 = {"sr-x4-int8": "sr-x4", "sr-x2-int8": "sr-x2"}
needs_bench = pytest.mark.skipif(not (SHARED / "bench" / "Set5").is_dir(), reason="needs ../shared/data/bench")


def card(name: str) -> dict:
    return json.loads((MODELS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", sorted(BARS))
def test_card_matches_file_and_contract(name):
    c = card(name)
    path = MODELS / c["onnx"]["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == c["onnx"]["sha256"]
    assert c["task"] == "super-resolution" and c["scale"] == int(name[-1]) and c["params"] <= 1_500_000
    assert c["onnx"]["opset"] == 17 and c["parity_max_abs_diff"] <= 1e-4
    assert c["training"]["command"].startswith("python -m training") and c["training"]["steps"] > 1000
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    embedded = json.loads(meta["card"])
    assert embedded["metrics"] == c["metrics"] and embedded["name"] == name and meta["scale"] == str(c["scale"])
    assert [i.name for i in model.graph.input] == ["image"]


@pytest.mark.parametrize("name", sorted(BARS))
def test_card_meets_quality_bars(name):
    c = card(name)
    for bench, bar in BARS[name].items():
        m = c["metrics"][bench]
        assert m["psnr_y"] >= bar, f"{name} {bench}: {m['psnr_y']} < {bar}"
        assert m["psnr_y"] > m["bicubic_psnr_y"] and m["ssim_y"] > m["bicubic_ssim_y"]


@pytest.mark.parametrize("name", sorted(BARS))
def test_upscalers_are_the_efficient_family(name):
    c = card(name)
    assert c["arch"] == "span" and c["flops_per_input_pixel"] <= MAX_FLOPS_PER_PIXEL, (c["arch"], c["flops_per_input_pixel"])


@pytest.mark.parametrize("name", sorted(INT8))
def test_int8_variant_card_and_parity(name):
    """int8 (QDQ) variants for CPUs: weights of their float model, at most 0.1 dB lower on every set."""
    c, base = card(name), card(INT8[name])
    assert c["precision"] == "int8" and c["variant_of"] == INT8[name] and c["net_config"] == base["net_config"]
    assert hashlib.sha256((MODELS / c["onnx"]["file"]).read_bytes()).hexdigest() == c["onnx"]["sha256"]
    for bench, parity in c["int8_parity"].items():
        assert parity["fp32_psnr_y"] == base["metrics"][bench]["psnr_y"] and parity["diff_db"] >= -0.1, (bench, parity)
    ops = {n.op_type for n in onnx.load(str(MODELS / c["onnx"]["file"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@needs_bench
@pytest.mark.parametrize("name", sorted(BARS) + sorted(INT8))
def test_set5_numbers_reproduce_from_the_file(name):
    from training.evaluate import evaluate_onnx

    got = evaluate_onnx(MODELS / f"{name}.onnx", [str(SHARED / "bench" / "Set5")])["Set5"]
    want = card(name)["metrics"]["Set5"]
    # ORT kernels differ slightly across CPUs (AVX2 vs AVX-512): equal within rounding noise; int8 kernels more
    # so (AVX2's u8s8 products saturate at 16 bits, VNNI's do not)
    tol = 0.05 if name in INT8 else 0.01
    assert got["psnr_y"] == pytest.approx(want["psnr_y"], abs=tol) and got["ssim_y"] == pytest.approx(want["ssim_y"], abs=5e-4)


def _hr_lr(scale: int) -> tuple[np.ndarray, np.ndarray]:
    from training import data

    hr = data.mod_crop(data.load_rgb(SHARED / "bench" / "Set14" / "monarch.png"), scale)
    return hr, data.downscale(hr, scale)


@needs_bench
@pytest.mark.parametrize("name", sorted(BARS))
def test_tiled_matches_untiled_without_seams(name):
    """The service's tiling against one whole-image session run of the same model (issue 3)."""
    from app import imaging, upscaler
    from app.batching import Batcher
    from app.model import Model
    from app.runtime import Session
    from app.tiling import TilePlan
    from training import metrics

    c = card(name)
    scale, sess = c["scale"], Session(str(MODELS / f"{name}.onnx"), ["CPUExecutionProvider"])
    hr, lr = _hr_lr(scale)
    whole = sess.run(lr.transpose(2, 0, 1)[None].astype(np.float32) / 255)[0]
    whole = np.round(np.clip(whole, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8)
    tile, overlap = 48, 12

    async def tiled():
        b = Batcher(name, sess.run, 8, 1, 10)
        b.start()
        try:
            return await upscaler.upscale(Model(name, c, sess, b), imaging.Decoded(lr, None, False, "PNG"), tile, overlap)
        finally:
            await b.stop()

    out = asyncio.run(tiled())
    p_whole, p_tiled = metrics.psnr_y(whole, hr, scale), metrics.psnr_y(out, hr, scale)
    assert abs(p_whole - p_tiled) < 0.5
    assert metrics.psnr_y(out, whole, 0) > 40  # nearly the same image
    # Seams: the error against the untiled result where tiles meet is no worse than elsewhere.
    err = np.abs(out.astype(float) - whole.astype(float)).mean(axis=2)
    plan = TilePlan(lr.shape[0], lr.shape[1], tile, overlap, scale)
    seam_cols = {x * scale + d for x in plan.xs[1:] for d in range(-2, 3)} | {(x + tile) * scale + d for x in plan.xs[:-1] for d in range(-2, 3)}
    seam_cols = sorted(c for c in seam_cols if 0 <= c < err.shape[1])
    interior = np.delete(err, seam_cols, axis=1)
    assert err[:, seam_cols].mean() <= 2 * interior.mean() + 0.5


@pytest.fixture(scope="module")
def shipped_server():
    srv = ServerProcess({"GAN_MODELS_DIR": str(MODELS)})
    yield srv
    srv.stop()


def _first(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


@pytest.mark.skipif(not (SHARED / "train").is_dir(), reason="needs ../shared/data/train")
def test_real_jpeg_photo_through_the_server(shipped_server):
    from training import data

    photo = data.load_rgb(_first(SHARED / "train" / "BSDS400"))[:96, :128]
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=92)
    r = httpx.post(shipped_server.url + "/upscale", files={"image": ("p.jpg", buf.getvalue(), "image/jpeg")}, timeout=120)
    # the default x4 model on a CPU: the int8 variant of sr-x4 (GAN_INT8=auto)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.headers["x-model"] == "sr-x4-int8"
    assert Image.open(io.BytesIO(r.content)).size == (512, 384)


@needs_bench
@pytest.mark.parametrize("scale", [2, 4])
def test_server_output_beats_bicubic(shipped_server, scale):
    """End to end over HTTP, PNG in and out: the service's answer is measurably better than bicubic."""
    from training import data, metrics

    hr, lr = _hr_lr(scale)
    buf = io.BytesIO()
    Image.fromarray(lr).save(buf, "PNG")
    r = httpx.post(f"{shipped_server.url}/upscale?scale={scale}", content=buf.getvalue(), timeout=300)
    assert r.status_code == 200, r.text
    sr = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    bic = data.bicubic_resize(lr, (hr.shape[1], hr.shape[0]))
    assert sr.shape == hr.shape
    assert metrics.psnr_y(sr, hr, scale) > metrics.psnr_y(bic, hr, scale) + 0.5
    models = httpx.get(shipped_server.url + "/readyz").json()["models"]
    assert models["sr-x2"] == models["sr-x4"] == "CPUExecutionProvider" and "sr-x4-fp16" not in models  # no fp16 on a CPU
