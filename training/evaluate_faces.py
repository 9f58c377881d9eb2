"""Face upscalers on held-out aligned faces: HR = the face at 128 px, LR = its 32 px version made two ways
(bicubic, and the classical degradation pipeline's ``light`` preset, seeded per image), upscaled x4 by
bicubic and by each model; Y-PSNR / SSIM (border = 4) and gradient energy relative to HR, per LR kind.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training import data, metrics
from training.evaluate import onnx_upscaler

HR_SIZE = 128
SCALE = 4
DEGRADED_PRESET = "light"


def face_pairs(folders: list[str], seed: int = 0) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """{"bicubic": [(lr, hr)...], "degraded": [...]}: every face resized to 128 px (HR) and its 32 px LR."""
    from degradations import PRESETS, degrade

    hrs = [data.resize_short_side(im, HR_SIZE)[:HR_SIZE, :HR_SIZE] for im in data.load_images(data.list_images(folders), progress=False)]
    if not hrs:
        raise ValueError(f"no images in {folders}")
    return {
        "bicubic": [(data.downscale(hr, SCALE), hr) for hr in hrs],
        "degraded": [(degrade(hr, SCALE, np.random.default_rng(seed + i), PRESETS[DEGRADED_PRESET]), hr) for i, hr in enumerate(hrs)],
    }


def bicubic_up(lr: np.ndarray) -> np.ndarray:
    return data.bicubic_resize(lr, (lr.shape[1] * SCALE, lr.shape[0] * SCALE))


def upscalers(models: list[str | Path]) -> dict:
    return {"bicubic": bicubic_up, **{Path(m).stem: onnx_upscaler(m)[0] for m in models}}


def evaluate_faces(models: list[str | Path], folders: list[str], seed: int = 0) -> dict:
    """{lr kind: {method: {psnr_y, ssim_y, grad_ratio}}} for bicubic and each model, on the same faces."""
    pairs, methods = face_pairs(folders, seed), upscalers(models)
    results = {}
    for kind, items in pairs.items():
        results[kind] = {"images": len(items)}
        for name, up in methods.items():
            rows = []
            for lr, hr in items:
                sr = up(lr)
                rows.append([metrics.psnr_y(sr, hr, SCALE), metrics.ssim_y(sr, hr, SCALE),
                             metrics.gradient_energy(sr, SCALE) / max(1e-6, metrics.gradient_energy(hr, SCALE))])
            m = np.mean(rows, axis=0)
            results[kind][name] = {"psnr_y": round(float(m[0]), 3), "ssim_y": round(float(m[1]), 4), "grad_ratio": round(float(m[2]), 4)}
    return results


def format_table(results: dict) -> str:
    lines = ["| LR | method | Y-PSNR | SSIM | gradient energy / HR |", "|---|---|---|---|---|"]
    for kind, by_method in results.items():
        for name, r in by_method.items():
            if name != "images":
                lines.append(f"| {kind} ({by_method['images']} faces) | {name} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | {r['grad_ratio']:.3f} |")
    return "\n".join(lines)


def comparison_sheet(models: list[str | Path], folders: list[str], out: str | Path, rows: int = 6, seed: int = 0) -> Path:
    """A PNG, one face per row: LR (degraded, enlarged) | bicubic | each model | HR."""
    pairs, methods = face_pairs(folders, seed)["degraded"][:rows], upscalers(models)
    lines = []
    for lr, hr in pairs:
        lr_big = np.asarray(Image.fromarray(lr).resize((HR_SIZE, HR_SIZE), Image.Resampling.NEAREST))
        lines.append(np.concatenate([lr_big, *(up(lr) for up in methods.values()), hr], axis=1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(lines, axis=0)).save(out)
    return out
