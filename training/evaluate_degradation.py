"""Does a degradation look like real low-quality photos? Compare bicubic, the classical pipeline and a
learned High-to-Low model against held-out real photos by degradation statistics (training/degradation_stats.py).

Real side: 32x32 patches (four per image, on the 8x8 JPEG grid) of the real LR photos held out of H2L
training (the same deterministic split the trainer used). Generated side: 128x128 HR patches (eight per
image) of the given HR folders, each degraded to 32x32 by every method. Lower distances = closer to real.

How sure is a difference? A few hundred patches leave the Frechet distance noisy (with two and three patches
per image, the 95% interval of learned / bicubic was 0.73-1.07 for the same model), so each method's
distance is also given relative to bicubic's with a paired bootstrap (real and HR patches resampled
together, the same draw for every method): "clearly closer than bicubic" = the whole interval below 1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training import data
from training import degradation_stats as dstats

LR_PATCH = 32
REAL_CROPS, HR_CROPS = 4, 8  # patches per image
BOOTSTRAPS = 300


def real_patches(lr_data: list[str], holdout: int, seed: int) -> list[np.ndarray]:
    from training.train_sr import split_holdout

    _, held = split_holdout(data.list_images(lr_data), holdout, seed)
    return dstats.crops(data.load_images(held, progress=False), LR_PATCH, REAL_CROPS, seed)


def hr_patches(hr_dirs: list[str], scale: int, seed: int) -> list[np.ndarray]:
    return dstats.crops(data.load_images(data.list_images(hr_dirs), progress=False), LR_PATCH * scale, HR_CROPS, seed)


def evaluate_h2l(model: str | Path, hr_dirs: list[str], lr_data: list[str], holdout: int, seed: int = 0,
                 scale: int | None = None) -> dict:
    scale = scale or int(_session_scale(model))
    real = np.array([dstats.features(p) for p in real_patches(lr_data, holdout, seed)])
    hr = hr_patches(hr_dirs, scale, seed)
    if not hr or len(real) < 2:
        raise ValueError(f"need HR images of at least {LR_PATCH * scale}px in {hr_dirs} and real LR images of at least "
                         f"{LR_PATCH}px held out of {lr_data}")
    makers = {
        "bicubic": data.bicubic_lr,
        "pipeline": data.pipeline_lr("medium"),
        "learned": data.learned_lr(model),
    }
    out = {"real_patches": len(real), "generated_patches": len(hr), "real_median": {
        name: round(float(v), 4) for name, v in zip(dstats.FEATURES, np.median(real, axis=0))}}
    feats = {}
    for name, make in makers.items():
        rng = np.random.default_rng(seed)
        feats[name] = np.array([dstats.features(make(p, scale, rng)) for p in hr])
        out[name] = dstats.compare(real, feats[name])
    for name, ratio in ratio_to_bicubic(real, feats, seed).items():
        out[name]["ratio_to_bicubic"] = ratio
    return out


def ratio_to_bicubic(real: np.ndarray, feats: dict[str, np.ndarray], seed: int) -> dict[str, dict]:
    """Each method's Frechet distance / bicubic's: the point value and a paired-bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    others = [name for name in feats if name != "bicubic"]
    draws = {name: [] for name in others}
    for _ in range(BOOTSTRAPS):
        r = real[rng.integers(len(real), size=len(real))]
        i = rng.integers(len(feats["bicubic"]), size=len(feats["bicubic"]))
        bicubic = dstats.compare(r, feats["bicubic"][i])["frechet"]
        for name in others:
            draws[name].append(dstats.compare(r, feats[name][i])["frechet"] / max(bicubic, 1e-9))
    full = {name: dstats.compare(real, f)["frechet"] for name, f in feats.items()}
    return {name: {"value": round(full[name] / max(full["bicubic"], 1e-9), 4),
                   "ci95": [round(float(q), 4) for q in np.percentile(draws[name], [2.5, 97.5])]} for name in others}


def _session_scale(model: str | Path) -> str:
    import onnxruntime as ort

    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map["scale"]


def format_table(result: dict) -> str:
    lines = ["| LR made by | Frechet to real (lower is better) | / bicubic's (95% interval) | W1 noise | W1 gradient | W1 detail | "
             "W1 blockiness | median noise / blockiness |",
             "|---|---|---|---|---|---|---|---|"]
    for name in ("bicubic", "pipeline", "learned"):
        r = result[name]
        ratio = r.get("ratio_to_bicubic")
        rel = f"{ratio['value']:.2f} ({ratio['ci95'][0]:.2f}-{ratio['ci95'][1]:.2f})" if ratio else "1"
        lines.append(f"| {name} | {r['frechet']:.3f} | {rel} | {r['w1_noise']:.3f} | {r['w1_gradient']:.3f} | {r['w1_detail']:.3f} | "
                     f"{r['w1_blockiness']:.3f} | {r['median_noise']:.2f} / {r['median_blockiness']:.3f} |")
    m = result["real_median"]
    lines.append(f"| (real photos) | 0 | 0 | 0 | 0 | 0 | 0 | {m['noise']:.2f} / {m['blockiness']:.3f} |")
    return "\n".join(lines)
