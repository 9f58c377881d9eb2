"""How far are generated low-resolution images from real low-quality photos? Statistics, no discriminator.

Each image (or patch) is described by four measurements on its grey level:
- noise: Immerkaer's fast noise estimate (sigma, 0..255 scale), from a Laplacian-difference mask;
- gradient: mean gradient magnitude (sharpness and contrast);
- detail: mean |Laplacian| / mean gradient (fine detail relative to edges: low when blurred);
- blockiness: mean jump across the 8x8 JPEG grid / mean jump elsewhere (1.0 = no block edges).
Two sets of images are compared by the Frechet distance of their feature distributions after
standardising by the reference (real) set, and per feature by the 1-D Wasserstein distance.
"""
from __future__ import annotations

import math

import numpy as np

FEATURES = ("noise", "gradient", "detail", "blockiness")
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)


def _gray(img: np.ndarray) -> np.ndarray:
    rgb = img.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _conv3(g: np.ndarray, k: np.ndarray) -> np.ndarray:
    h, w = g.shape
    return sum(k[i, j] * g[i : h - 2 + i, j : w - 2 + j] for i in range(3) for j in range(3))


def features(img: np.ndarray) -> np.ndarray:
    """The four measurements of one uint8 HxWx3 image (at least 16x16)."""
    g = _gray(img)
    h, w = g.shape
    noise = math.sqrt(math.pi / 2) * np.abs(_conv3(g, _NOISE_MASK)).sum() / (6 * (w - 2) * (h - 2))
    gy, gx = np.gradient(g)
    grad = float(np.mean(np.hypot(gx, gy)))
    lap = np.abs(_conv3(g, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float64))).mean()
    dx, dy = np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0))
    bx, by = (np.arange(w - 1) % 8) == 7, (np.arange(h - 1) % 8) == 7
    block = (dx[:, bx].mean() + dy[by].mean()) / max(1e-6, dx[:, ~bx].mean() + dy[~by].mean())
    return np.array([noise, grad, lap / max(grad, 1e-6), block])


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two [n, d] feature sets."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # sqrt of s1 s2 through the symmetric form s1^1/2 s2 s1^1/2 (eigendecompositions; no scipy needed)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(cross, 0, None)).sum())


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    q = np.linspace(0, 1, 101)
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def compare(real: np.ndarray, other: np.ndarray) -> dict:
    """Distances of a feature set to the real one, both standardised by the real set's mean and std."""
    mu, sd = real.mean(0), real.std(0) + 1e-9
    zr, zo = (real - mu) / sd, (other - mu) / sd
    out = {"frechet": round(frechet(zr, zo), 4)}
    for i, name in enumerate(FEATURES):
        out[f"w1_{name}"] = round(wasserstein_1d(zr[:, i], zo[:, i]), 4)
        out[f"median_{name}"] = round(float(np.median(other[:, i])), 4)
    return out


def aligned_crops(img: np.ndarray, size: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random size x size crops at offsets that are multiples of 8 (so a JPEG grid stays on the grid)."""
    h, w = img.shape[:2]
    if h < size or w < size:
        return []
    out = []
    for _ in range(count):
        y = 8 * int(rng.integers((h - size) // 8 + 1))
        x = 8 * int(rng.integers((w - size) // 8 + 1))
        out.append(img[y : y + size, x : x + size])
    return out


def crops(images: list[np.ndarray], size: int, count: int, seed: int) -> list[np.ndarray]:
    """``count`` aligned crops of every image (those large enough), from one seeded generator."""
    rng = np.random.default_rng(seed)
    return [c for im in images for c in aligned_crops(im, size, count, rng)]
