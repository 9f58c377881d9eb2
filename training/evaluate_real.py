"""Upscalers on real low-quality photos, where no ground truth exists: NIQE (training/niqe.py) of each
model's x4 output, next to bicubic, plus a side-by-side comparison sheet.

Inputs: every image of the given folders (RealSRSet: old photos, web JPEGs, screenshots) and the real
low-quality web photos held out of the High-to-Low GAN's training (same deterministic split), so no
model has seen any of them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from training import data, niqe
from training.evaluate import onnx_upscaler


def inputs(folders: list[str], heldout_from: list[str], heldout: int, count: int, seed: int = 0) -> dict[str, list[Path]]:
    from training.train_sr import split_holdout

    sets = {Path(f).name: data.list_images([f]) for f in folders}
    if heldout_from and count:
        _, held = split_holdout(data.list_images(heldout_from), heldout, seed)
        sets[Path(heldout_from[0]).name + f" (held out, {count})"] = held[:count]
    return sets


def evaluate_real(models: list[str | Path], sets: dict[str, list[Path]], scale: int = 4) -> dict:
    model = niqe.load()
    ups = {"bicubic": None, **{Path(m).stem: onnx_upscaler(m)[0] for m in models}}
    out: dict[str, dict] = {}
    for set_name, paths in sets.items():
        scores: dict[str, list[float]] = {k: [] for k in ups}
        for p in paths:
            lr = data.load_rgb(p)
            for name, run in ups.items():
                sr = data.bicubic_resize(lr, (lr.shape[1] * scale, lr.shape[0] * scale)) if run is None else run(lr)
                scores[name].append(niqe.score(sr, model))
        out[set_name] = {"images": len(paths), **{k: round(float(np.mean(v)), 3) for k, v in scores.items()}}
    return out


def format_table(result: dict) -> str:
    names = [k for k in next(iter(result.values())) if k != "images"]
    lines = ["| set | images | " + " | ".join(f"NIQE {n}" for n in names) + " |", "|---|---|" + "---|" * len(names)]
    for s, r in result.items():
        lines.append(f"| {s} | {r['images']} | " + " | ".join(f"{r[n]:.2f}" for n in names) + " |")
    return "\n".join(lines)


def comparison_sheet(models: list[str | Path], paths: list[Path], out: str | Path, crop: int = 64, scale: int = 4) -> Path:
    """Rows of images; columns: input (nearest), bicubic, then each model; a centred crop of each, enlarged."""
    ups = [(Path(m).stem, onnx_upscaler(m)[0]) for m in models]
    cols = ["input", "bicubic", *[n for n, _ in ups]]
    cell = crop * scale
    sheet = Image.new("RGB", (cell * len(cols), (cell + 18) * len(paths) + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(cols):
        draw.text((c * cell + 4, 3), name, fill="black")
    for r, p in enumerate(paths):
        lr = data.load_rgb(p)
        h, w = lr.shape[:2]
        y, x = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        patch = lr[y : y + crop, x : x + crop]
        outs = [np.asarray(Image.fromarray(patch).resize((patch.shape[1] * scale, patch.shape[0] * scale), Image.Resampling.NEAREST)),
                data.bicubic_resize(patch, (patch.shape[1] * scale, patch.shape[0] * scale))]
        ctx = lr[max(0, y - 8) : y + crop + 8, max(0, x - 8) : x + crop + 8]  # context, so crop borders are not edge artefacts
        oy, ox = (y - max(0, y - 8)) * scale, (x - max(0, x - 8)) * scale
        for _, run in ups:
            outs.append(run(ctx)[oy : oy + patch.shape[0] * scale, ox : ox + patch.shape[1] * scale])
        top = 18 + r * (cell + 18)
        for c, o in enumerate(outs):
            sheet.paste(Image.fromarray(o), (c * cell, top))
        draw.text((4, top + cell + 2), p.name, fill="black")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
