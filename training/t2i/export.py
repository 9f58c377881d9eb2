"""Export a t2i-train run's generator (EMA weights, standing BatchNorm statistics) to ONNX with its card.

Contract (read by the service): ``NAME.onnx`` with inputs ``text_embedding`` float32 [N,384] (the text
encoder's output) and ``noise`` float32 [N,Z] (standard normal), output ``image`` float32 [N,3,64,64] RGB in
[0,1]; ``NAME.json`` beside it; the card also in the file's metadata_props (training/export.py's helpers).
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import torch

from training.export import training_summary, write_card
from training.t2i.lapgan import SIZES, ExportedLap, LapGenerator
from training.t2i.nets import Exported, count_params
from training.t2i.train import load_generator

OPSET = 17
PARITY_ATOL = 1e-4

INTENDED_USE = (
    "A research demo of text-conditioned image synthesis at 64x64: flower "
    "captions in, small flower pictures out. It knows only the flowers of Oxford-102 (82 classes; 20 held out) and "
    "the words of their captions: colours and the shape of petals work best; anything that is not a flower gives "
    "a flower anyway. Output is blurry, often not a recognisable species, and the same caption gives different "
    "flowers for different seeds. Not for depicting real people or places, and not a source of facts about plants. "
    "size 256 only enlarges the 64 px image with the x4 upscaler."
)


def export_onnx(g: torch.nn.Module, path: Path) -> float:
    """Write the ONNX graph; return the max abs difference ORT vs PyTorch on random inputs (raises above atol)."""
    import onnxruntime as ort

    lap = isinstance(g, LapGenerator)
    wrapped = (ExportedLap(g) if lap else Exported(g)).eval()
    names = list(ExportedLap.INPUTS if lap else ("text_embedding", "noise"))
    gen = torch.Generator().manual_seed(0)

    def inputs(n: int) -> tuple[torch.Tensor, ...]:
        e = torch.nn.functional.normalize(torch.randn(n, g.config.emb_dim, generator=gen), dim=1)
        maps = [torch.randn(n, 1, s, s, generator=gen) for s in SIZES[1:]] if lap else []
        return e, torch.randn(n, g.config.z_dim, generator=gen), *maps

    torch.onnx.export(
        wrapped, inputs(2), str(path), input_names=names, output_names=["image"],
        dynamic_axes={**{k: {0: "batch"} for k in names}, "image": {0: "batch"}}, opset_version=OPSET, dynamo=False,
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for n in (1, 3, 16):
        x = inputs(n)
        with torch.no_grad():
            ref = wrapped(*x).numpy()
        got = sess.run(None, {k: v.numpy() for k, v in zip(names, x)})[0]
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > PARITY_ATOL:
        raise RuntimeError(f"ONNX/PyTorch parity failed: max abs diff {worst:.2e}")
    return worst


def describe(ck: dict) -> str:
    tc, net = ck["train_config"], ck["net_config"]
    common = ("trained on Oxford-102 flowers: sentence embedding of a caption (text-encoder, all-MiniLM-L6-v2) + noise -> "
              "a flower image")
    d_terms = (" and a projection term" if net.get("projection") else "") + ", GAN-INT interpolation, EMA"
    if ck["arch"] == "lapgan":
        return (f"LAPGAN text-to-image generator (Denton et al. 2015) at 64x64, {common}. A Laplacian pyramid: an 8x8 image "
                "from (z, caption), then each finer level (16, 32, 64 px) adds a band made from the upsampled coarser image, "
                "its own noise map and the caption; one matching-aware discriminator per level with spectral norm" + d_terms
                + ". The coarse level's noise comes from the seed, the finer ones from the detail seed.")
    return (f"GAN-INT-CLS text-to-image generator (Reed et al. 2016) at 64x64, {common}. DCGAN-style generator, "
            "matching-aware discriminator with spectral norm" + d_terms
            + (" and an auxiliary class loss (TAC-GAN, Dash et al. 2017)" if tc.get("w_cls") else "") + ".")


def export_run(run: str | Path, out_dir: str | Path = "models", name: str = "t2i-flowers64", classifier: str | None = None,
               evaluate_it: bool = True, notes: str = "", grid: str | None = "docs/t2i-grid.png", threads: int = 1) -> dict:
    run, out_dir = Path(run), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run / "ckpt.pt" if run.is_dir() else run
    g, ck = load_generator(ckpt)
    tc = ck["train_config"]
    onnx_path = out_dir / f"{name}.onnx"
    parity = export_onnx(g, onnx_path)
    z = g.config.z_dim
    encoder_card = json.loads((out_dir / "text-encoder.json").read_text()) if (out_dir / "text-encoder.json").exists() else {}
    training = training_summary(ck, run if run.is_dir() else None)
    for k in ("sample_every", "cache", "limit"):  # bookkeeping, not how the model was trained
        training.pop(k, None)
    training["data"] = (f"{tc['data']}: train split of the 82 seen classes, {tc['attr_per_image']} attribute captions per "
                        "image (captions.py) + its ~10 human captions (captions_reed.csv), embedded once by the shipped text encoder")
    card = {
        "name": name,
        "task": "text-to-image",
        "size": 64,
        "z_dim": z,
        "text_encoder": "text-encoder",
        "description": describe(ck),
        "arch": ck["arch"],
        "net_config": ck["net_config"],
        "params": count_params(g),
        "inputs": [
            {"name": "text_embedding", "dtype": "float32", "shape": ["N", g.config.emb_dim],
             "note": "the text encoder's L2-normalised embedding of the prompt"},
            {"name": "noise", "dtype": "float32", "shape": ["N", z], "distribution": "standard normal",
             "seeding": "numpy.random.default_rng(seed).standard_normal(z_dim)"},
            *({"name": f"noise_{s}", "dtype": "float32", "shape": ["N", 1, s, s], "distribution": "standard normal",
               "seeding": f"numpy.random.default_rng([detail_seed, {s}]).standard_normal((1, {s}, {s}))",
               "note": f"the {s} px level's detail noise"} for s in (SIZES[1:] if isinstance(g, LapGenerator) else ())),
        ],
        "outputs": [{"name": "image", "dtype": "float32", "shape": ["N", 3, 64, 64], "range": [0, 1], "color": "RGB"}],
        "heldout_classes": ck["heldout_classes"],
        "training": training,
        "evaluation": {},
        "intended_use_and_limitations": INTENDED_USE,
        "parity_max_abs_diff": parity,
        "onnx": {"file": onnx_path.name, "opset": OPSET},
        "created": dt.date.today().isoformat(),
        "notes": notes,
    }
    if encoder_card:
        card["text_encoder_sha256"] = encoder_card["onnx"]["sha256"]
    if evaluate_it:
        from training.t2i.classifier import DEFAULT_PATH
        from training.t2i.evaluate import evaluate

        own_judge = classifier and Path(classifier).resolve() != Path(DEFAULT_PATH).resolve()
        cmd = f"python -m training t2i-evaluate {onnx_path}" + (f" --classifier {classifier}" if own_judge else "")
        result = evaluate(onnx_path, classifier or DEFAULT_PATH, tc["data"], tc["encoder"], tc["cache"], ck["heldout_classes"],
                          attr_per_image=tc["attr_per_image"], grid=grid, threads=threads)
        result.pop("grid", None)
        result.pop("detail_grid", None)
        card["evaluation"] = {"command": cmd, **result}
    write_card(onnx_path, card)
    return card
