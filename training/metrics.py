"""Quality metrics as the SR literature reports them (see shared design notes).

Y channel of BT.601 as MATLAB's rgb2ycbcr, ``border`` pixels cropped on every side, float64, peak 255;
SSIM with an 11x11 Gaussian window, sigma 1.5, on the valid region (Wang et al.'s reference code).
Pure numpy, so the service's benchmarks can use it without torch.
"""
from __future__ import annotations

import numpy as np


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """uint8 (or 0..255 float) HxWx3 RGB -> float64 Y in [16, 235], MATLAB rgb2ycbcr convention."""
    rgb = img.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _crop(y: np.ndarray, border: int) -> np.ndarray:
    return y[border:-border, border:-border] if border > 0 else y


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    a, b = _crop(rgb_to_y(sr), border), _crop(rgb_to_y(hr), border)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(ax**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation with a symmetric 1-D kernel along both axes."""
    k = len(g)
    rows = sum(g[i] * img[i : img.shape[0] - k + 1 + i, :] for i in range(k))
    return sum(g[i] * rows[:, i : rows.shape[1] - k + 1 + i] for i in range(k))


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    a, b = _crop(rgb_to_y(sr), border), _crop(rgb_to_y(hr), border)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def gradient_energy(img: np.ndarray, border: int = 0) -> float:
    """Mean gradient magnitude of the Y channel (a measure of high-frequency content, 0..255 scale)."""
    y = _crop(rgb_to_y(img), border)
    gy, gx = np.gradient(y)
    return float(np.mean(np.hypot(gx, gy)))
