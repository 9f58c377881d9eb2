"""Quality metrics follow the SR literature's conventions (MATLAB Y, border crop, Gaussian SSIM)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import SHARED, photo
from training import data, metrics


def test_y_channel_matches_matlab_rgb2ycbcr():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    assert np.allclose(metrics.rgb_to_y(px), [[16.0, 235.0, 16 + 65.481]])


def test_psnr_known_value_and_border():
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a.copy()
    b[5:15, 5:15] += 10  # luma differs by (65.481+128.553+24.966)*10/255 = 8.588 on 100 of 144 interior px
    d = 219 * 10 / 255
    expected = 10 * np.log10(255**2 / (d * d * 100 / 144))
    assert metrics.psnr_y(b, a, border=4) == pytest.approx(expected)
    assert metrics.psnr_y(a, a, border=4) == float("inf")


def test_ssim_identity_and_order():
    img = photo(64, 64)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(img + np.random.default_rng(0).normal(0, 30, img.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim_y(img, img, 4) == pytest.approx(1.0)
    assert 1 > metrics.ssim_y(noisy, img, 4) > metrics.ssim_y(noisier, img, 4) > 0
    assert metrics.ssim_y(noisy, img, 4) == pytest.approx(metrics.ssim_y(img, noisy, 4))


@pytest.mark.skipif(not (SHARED / "bench" / "Set5").is_dir(), reason="needs ../shared/data/bench")
@pytest.mark.parametrize("scale,anchor,ssim_anchor", [(4, 28.42, 0.8104), (2, 33.66, 0.9299)])
def test_bicubic_set5_reproduces_published_anchor(scale, anchor, ssim_anchor):
    """LR by Pillow's antialiased bicubic, as MATLAB imresize: the published bicubic numbers come out."""
    scores, ssims = [], []
    for p in data.list_images([SHARED / "bench" / "Set5"]):
        hr = data.mod_crop(data.load_rgb(p), scale)
        lr = data.downscale(hr, scale)
        up = data.bicubic_resize(lr, (hr.shape[1], hr.shape[0]))
        scores.append(metrics.psnr_y(up, hr, scale))
        ssims.append(metrics.ssim_y(up, hr, scale))
    assert np.mean(scores) == pytest.approx(anchor, abs=0.05)
    assert np.mean(ssims) == pytest.approx(ssim_anchor, abs=0.002)  # the Gaussian-window SSIM of the SR papers
