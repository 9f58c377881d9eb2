"""The classical degradation pipeline (degradations/pipeline.py): pure, seeded, the right sizes, each step sound."""
from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from degradations import pipeline as D
from tests.helpers import photo


def img(w=96, h=80, seed=0):
    return photo(w, h, seed)


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("size", [(96, 80), (37, 23), (8, 8)])
def test_output_size_and_dtype(scale, size):
    w, h = size
    out = D.degrade(img(w, h), scale, np.random.default_rng(0))
    assert out.shape == (h // scale, w // scale, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("preset", list(D.PRESETS))
def test_same_seed_same_image_other_seed_other_image(preset):
    p = D.PRESETS[preset]
    a = D.degrade(img(), 2, np.random.default_rng(7), p)
    b = D.degrade(img(), 2, np.random.default_rng(7), p)
    c = D.degrade(img(), 2, np.random.default_rng(8), p)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_heavier_presets_degrade_more():
    """Averaged over seeds, heavy moves further from the clean bicubic downscale than medium, medium than light."""
    from PIL import Image

    clean = img(128, 128, 3)
    ref = np.asarray(Image.fromarray(clean).resize((32, 32), Image.Resampling.BICUBIC)).astype(float)
    err = {k: np.mean([np.abs(D.degrade(clean, 4, np.random.default_rng(s), p).astype(float) - ref).mean() for s in range(12)])
           for k, p in D.PRESETS.items()}
    assert err["light"] < err["medium"] < err["heavy"], err


def test_kernels_are_normalised_and_symmetric():
    rng = np.random.default_rng(0)
    for _ in range(50):
        k = D.random_kernel(rng, D.Blur(sinc_prob=0.3))
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert abs(k.sum() - 1) < 1e-5
        assert np.allclose(k, k[::-1, ::-1], atol=1e-6)  # point-symmetric: blur never shifts the image
    s = D.sinc_kernel(21, math.pi / 3)
    assert s.min() < 0  # ringing lobes: what makes sinc artefacts
    assert np.allclose(D._bessel_j1(np.array([1.0, 2.0, 5.0])), [0.4400506, 0.5767248, -0.3275791], atol=1e-6)


def test_isotropic_gaussian_matches_its_sigma():
    rng = np.random.default_rng(0)
    k = D.random_kernel(rng, D.Blur(kinds={"iso": 1.0}, sigma=(2.0, 2.0), kernel_sizes=(21,), sinc_prob=0.0))
    ax = np.arange(21) - 10
    var = (k.sum(axis=0) * ax**2).sum()
    assert abs(math.sqrt(var) - 2.0) < 0.05


def test_blur_with_a_delta_is_identity_and_jpeg_is_lossy_by_quality():
    x = img().astype(np.float32) / 255
    delta = np.zeros((3, 3), np.float32)
    delta[1, 1] = 1
    assert np.allclose(D.blur(x, delta), x)
    e95 = np.abs(D.jpeg(x, 95) - x).mean()
    e20 = np.abs(D.jpeg(x, 20) - x).mean()
    assert e95 < e20 and e95 < 0.02


def test_gray_noise_is_the_same_in_every_channel():
    x = np.full((32, 32, 3), 0.5, np.float32)
    out = D.add_noise(x, np.random.default_rng(0), D.Noise(gray_prob=1.0, gaussian_prob=1.0, gaussian_sigma=(20, 20)))
    d = out - x
    assert np.allclose(d[..., 0], d[..., 1]) and np.allclose(d[..., 1], d[..., 2])
    assert abs(d.std() - 20 / 255) < 0.01
    colour = D.add_noise(x, np.random.default_rng(0), D.Noise(gray_prob=0.0, gaussian_prob=0.0, poisson_scale=(1, 1)))
    assert not np.allclose(colour[..., 0], colour[..., 1])


def test_resize_directions():
    x = img(40, 40).astype(np.float32) / 255
    rng = np.random.default_rng(0)
    assert D.random_resize(x, rng, D.Resize(probs=(0, 1, 0), range=(0.5, 1.5))).shape[0] <= 40
    assert D.random_resize(x, rng, D.Resize(probs=(1, 0, 0), range=(0.5, 1.5))).shape[0] >= 40
    assert D.random_resize(x, rng, D.Resize(probs=(0, 0, 1))).shape == x.shape


def test_parameters_are_typed_and_closed():
    with pytest.raises(ValidationError):
        D.Pipeline(first={"blur": {"sigmaa": (1, 2)}})  # a misspelt key is an error, not silently ignored
    p = D.Pipeline.model_validate({"second_prob": 0.5, "first": {"jpeg": {"quality": [50, 60]}}})
    assert p.first.jpeg.quality == (50.0, 60.0) and p.second_prob == 0.5


def test_jpeg_stage_takes_sides_beyond_what_jpeg_can_hold():
    """/degrade on inputs wider than about 43k px gave 500: the JPEG stage could not encode the intermediate."""
    from degradations import pipeline as degradation

    img = np.tile(photo(64, 16).astype(np.float32) / 255, (1, 1024, 1))[:, : degradation.JPEG_MAX_SIDE + 40]
    out = degradation.jpeg(img, 90)
    assert out.shape == img.shape and np.abs(out - img).mean() < 0.05
