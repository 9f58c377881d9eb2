"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik, IEEE SPL 2013): no reference.

A multivariate Gaussian is fitted to natural-scene statistics of sharp patches of pristine photos; an
image's score is the distance of its own patch statistics from that model (lower = more natural). The
statistics, per 96x96 patch and at two scales: a generalized Gaussian fit of the MSCN coefficients
(mean-subtracted, contrast-normalised luminance) and asymmetric generalized Gaussian fits of the products
of neighbouring MSCN coefficients in four directions (18 numbers a scale, 36 in all).

The published model was fitted on 125 pristine images that are not available here; ``fit`` fits the
same model on the project's clean training photos (the HR side of every trainer), and the fitted
parameters ship as ``niqe_pristine.npz`` so scores are reproducible. Absolute values are therefore not
comparable with papers' NIQE numbers; comparisons between models scored with the same file are.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from training import metrics

PATCH = 96
PRISTINE = Path(__file__).with_name("niqe_pristine.npz")
_GAM = np.arange(0.2, 10.001, 0.001)
_R_GAM = np.array([math.gamma(2 / g) ** 2 / (math.gamma(1 / g) * math.gamma(3 / g)) for g in _GAM])


def mscn(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSCN coefficients and the local deviation map (7x7 Gaussian, sigma 7/6, as the reference code)."""
    mu = cv2.GaussianBlur(y, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(cv2.GaussianBlur(y * y, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE) - mu * mu))
    return (y - mu) / (sigma + 1.0), sigma


def ggd(x: np.ndarray) -> tuple[float, float]:
    """Shape and variance of a zero-mean generalized Gaussian, by moment matching."""
    var = float(np.mean(x * x))
    rho = float(np.mean(np.abs(x))) ** 2 / max(var, 1e-12)
    return float(_GAM[np.argmin(np.abs(_R_GAM - rho))]), var


def aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    """Shape, mean, left and right variance of an asymmetric generalized Gaussian."""
    left, right = x[x < 0], x[x > 0]
    ls = math.sqrt(float(np.mean(left * left))) if left.size else 1e-6
    rs = math.sqrt(float(np.mean(right * right))) if right.size else 1e-6
    g = ls / max(rs, 1e-12)
    r = float(np.mean(np.abs(x))) ** 2 / max(float(np.mean(x * x)), 1e-12)
    rn = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    a = float(_GAM[np.argmin((_R_GAM - rn) ** 2)])
    bl, br = ls * math.sqrt(math.gamma(1 / a) / math.gamma(3 / a)), rs * math.sqrt(math.gamma(1 / a) / math.gamma(3 / a))
    mean = (br - bl) * math.gamma(2 / a) / math.gamma(1 / a)
    return a, mean, bl * bl, br * br


def _patch_features(m: np.ndarray) -> list[float]:
    a, v = ggd(m)
    feats = [a, v]
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        feats += aggd(m * np.roll(m, (dy, dx), axis=(0, 1)))
    return feats


def patch_features(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[n_patches, 36] features and each patch's sharpness (mean local deviation) of a uint8 RGB image."""
    y = metrics.rgb_to_y(img)
    h, w = (y.shape[0] // PATCH) * PATCH, (y.shape[1] // PATCH) * PATCH
    if h == 0 or w == 0:
        raise ValueError(f"NIQE needs an image of at least {PATCH}x{PATCH}, got {img.shape[1]}x{img.shape[0]}")
    y = y[:h, :w]
    per_scale, sharp = [], None
    for s in (1, 2):
        ys = y if s == 1 else cv2.resize(y, (w // 2, h // 2), interpolation=cv2.INTER_CUBIC)
        m, sigma = mscn(ys)
        p = PATCH // s
        rows = []
        sh = []
        for i in range(0, ys.shape[0] - p + 1, p):
            for j in range(0, ys.shape[1] - p + 1, p):
                rows.append(_patch_features(m[i : i + p, j : j + p]))
                sh.append(float(sigma[i : i + p, j : j + p].mean()))
        per_scale.append(np.array(rows))
        if s == 1:
            sharp = np.array(sh)
    return np.concatenate(per_scale, axis=1), sharp


def fit(images: list[np.ndarray], sharpness: float = 0.75) -> dict[str, np.ndarray]:
    """The pristine model: mean and covariance over the sharpest patches (>= sharpness x the image's max)."""
    rows = []
    for img in images:
        if min(img.shape[:2]) < PATCH:
            continue
        f, sharp = patch_features(img)
        rows.append(f[sharp >= sharpness * sharp.max()])
    feats = np.concatenate(rows)
    return {"mu": feats.mean(0), "cov": np.cov(feats, rowvar=False), "patches": np.array(len(feats))}


def load(path: Path = PRISTINE) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def score(img: np.ndarray, model: dict[str, np.ndarray]) -> float:
    """NIQE of a uint8 RGB image (lower = closer to the pristine statistics)."""
    f, _ = patch_features(img)
    mu = f.mean(0)
    cov = np.cov(f, rowvar=False) if len(f) > 1 else np.zeros_like(model["cov"])
    d = model["mu"] - mu
    return float(math.sqrt(max(0.0, d @ np.linalg.pinv((model["cov"] + cov) / 2) @ d)))
