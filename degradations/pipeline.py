"""The classical real-world degradation pipeline (two stages, as Real-ESRGAN; BSRGAN shuffles a similar set).

Each stage: blur (isotropic / anisotropic Gaussian, generalized Gaussian, plateau, or a sinc ringing
filter) -> random resize (up / down / keep, area / bilinear / bicubic) -> noise (Gaussian or Poisson,
colour or grey) -> JPEG at a random quality. The second stage is applied with a probability, and the
image is finally resized to 1/scale with a sinc filter and JPEG in random order.

Every step is a pure function of (image, rng, params): images are float32 HxWx3 RGB in [0, 1], ``rng``
is a numpy Generator, params are typed, immutable ranges. Only numpy and OpenCV, no torch, so training
and the service (``POST /degrade``) run exactly the same code; the same seed gives the same image.
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Range = tuple[float, float]


class Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Blur(Params):
    prob: float = 1.0
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    # kernel kind -> relative probability
    kinds: dict[str, float] = Field(default_factory=lambda: {
        "iso": 0.45, "aniso": 0.25, "generalized_iso": 0.12, "generalized_aniso": 0.03, "plateau_iso": 0.12, "plateau_aniso": 0.03,
    })
    sigma: Range = (0.2, 3.0)
    beta_generalized: Range = (0.5, 4.0)
    beta_plateau: Range = (1.0, 2.0)
    sinc_prob: float = 0.1  # instead of the kernel above: a circular low-pass (ringing / overshoot artefacts)


class Resize(Params):
    probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    range: Range = (0.15, 1.5)  # scale factor, drawn from [range0, 1] for down and [1, range1] for up
    modes: tuple[str, ...] = ("area", "bilinear", "bicubic")


class Noise(Params):
    gaussian_prob: float = 0.5  # else Poisson
    gaussian_sigma: Range = (1.0, 30.0)  # on the 0..255 scale
    poisson_scale: Range = (0.05, 3.0)
    gray_prob: float = 0.4


class Jpeg(Params):
    quality: Range = (30.0, 95.0)


class Stage(Params):
    blur: Blur = Blur()
    resize: Resize = Resize()
    noise: Noise = Noise()
    jpeg: Jpeg = Jpeg()


class Pipeline(Params):
    """Both stages and the final step. The defaults are Real-ESRGAN's (Wang et al. 2021)."""

    first: Stage = Stage()
    second: Stage = Stage(
        blur=Blur(prob=0.8, sigma=(0.2, 1.5), beta_generalized=(0.5, 4.0)),
        resize=Resize(probs=(0.3, 0.4, 0.3), range=(0.3, 1.2)),
        noise=Noise(gaussian_sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5)),
    )
    second_prob: float = 1.0
    final_sinc_prob: float = 0.8


INTERPOLATION = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}

# Named strengths for the service (`strength=`); `medium` is the literature's default.
PRESETS: dict[str, Pipeline] = {
    "light": Pipeline(
        first=Stage(blur=Blur(sigma=(0.2, 1.5), sinc_prob=0.05), resize=Resize(range=(0.5, 1.2)),
                    noise=Noise(gaussian_sigma=(1.0, 8.0), poisson_scale=(0.05, 0.5)), jpeg=Jpeg(quality=(60.0, 95.0))),
        second_prob=0.0, final_sinc_prob=0.3,
    ),
    "medium": Pipeline(),
    "heavy": Pipeline(
        first=Stage(blur=Blur(sigma=(1.0, 4.0)), noise=Noise(gaussian_sigma=(5.0, 35.0), poisson_scale=(0.5, 3.5)),
                    jpeg=Jpeg(quality=(20.0, 60.0))),
        second=Stage(blur=Blur(prob=0.9, sigma=(0.5, 2.0)), resize=Resize(probs=(0.3, 0.4, 0.3), range=(0.3, 1.2)),
                     noise=Noise(gaussian_sigma=(3.0, 25.0), poisson_scale=(0.3, 2.5)), jpeg=Jpeg(quality=(20.0, 60.0))),
    ),
}


def load_presets(path: str | os.PathLike | None) -> dict[str, Pipeline]:
    """PRESETS, with the ones named in a JSON file replaced (validated: a typo fails loudly)."""
    if not path:
        return dict(PRESETS)
    import json
    from pathlib import Path

    raw = json.loads(Path(path).read_text())
    unknown = set(raw) - set(PRESETS)
    if unknown:
        raise ValueError(f"{path}: unknown presets {sorted(unknown)}; the presets are {sorted(PRESETS)}")
    return {**PRESETS, **{k: Pipeline.model_validate(v) for k, v in raw.items()}}


# ---- kernels -----------------------------------------------------------------------------------------

def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    return np.meshgrid(ax, ax)


def _mahalanobis(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """x^T Sigma^-1 x on a size x size grid for a Gaussian rotated by theta."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T)
    xx, yy = _grid(size)
    return inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """A normalised size x size Gaussian: isotropic by default, anisotropic (rotated by theta) with sigma_y."""
    k = np.exp(-0.5 * _mahalanobis(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta))
    return (k / k.sum()).astype(np.float32)


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """J1 by its integral form (1/pi) * int_0^pi cos(t - x sin t) dt (no scipy needed)."""
    t = np.linspace(0.0, math.pi, 257)
    vals = np.cos(t[None, :] - np.asarray(x, np.float64).reshape(-1, 1) * np.sin(t[None, :]))
    return (np.trapezoid(vals, t, axis=1) / math.pi).reshape(np.shape(x))


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """Circular low-pass filter with cutoff frequency ``cutoff`` (radians, in (0, pi])."""
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * _bessel_j1(cutoff * r) / (2 * math.pi * r)
    k[r == 0] = cutoff**2 / (4 * math.pi)
    return (k / k.sum()).astype(np.float32)


def random_kernel(rng: np.random.Generator, p: Blur) -> np.ndarray:
    """One random blur kernel (normalised to sum 1) drawn from the ranges in ``p``."""
    size = int(rng.choice(p.kernel_sizes))
    if rng.random() < p.sinc_prob:
        cutoff = rng.uniform(math.pi / 3, math.pi) if size < 13 else rng.uniform(math.pi / 5, math.pi)
        return sinc_kernel(size, cutoff)
    kinds = list(p.kinds)
    w = np.array([p.kinds[k] for k in kinds], np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
    sx = rng.uniform(*p.sigma)
    sy, theta = (sx, 0.0) if kind.endswith("iso") and not kind.endswith("aniso") else (rng.uniform(*p.sigma), rng.uniform(-math.pi, math.pi))
    d = _mahalanobis(size, sx, sy, theta)
    if kind.startswith("generalized"):
        k = np.exp(-0.5 * np.power(d, rng.uniform(*p.beta_generalized)))
    elif kind.startswith("plateau"):
        k = 1.0 / (1.0 + np.power(d, rng.uniform(*p.beta_plateau)))
    else:
        k = np.exp(-0.5 * d)
    return (k / k.sum()).astype(np.float32)


# ---- steps -------------------------------------------------------------------------------------------

def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def resize(img: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize to (width, height) with the named interpolation."""
    return cv2.resize(img, (max(1, size[0]), max(1, size[1])), interpolation=INTERPOLATION[mode])


def random_resize(img: np.ndarray, rng: np.random.Generator, p: Resize) -> np.ndarray:
    way = int(rng.choice(3, p=np.asarray(p.probs) / sum(p.probs)))
    factor = rng.uniform(1.0, p.range[1]) if way == 0 else rng.uniform(p.range[0], 1.0) if way == 1 else 1.0
    h, w = img.shape[:2]
    return resize(img, (round(w * factor), round(h * factor)), str(rng.choice(p.modes)))


def add_noise(img: np.ndarray, rng: np.random.Generator, p: Noise) -> np.ndarray:
    gray = rng.random() < p.gray_prob
    shape = img.shape[:2] + ((1,) if gray else (img.shape[2],))
    if rng.random() < p.gaussian_prob:
        noise = rng.normal(0.0, rng.uniform(*p.gaussian_sigma) / 255.0, shape).astype(np.float32)
    else:
        # Shot noise: photon counts ~ Poisson(intensity * 255 / scale); larger scale = fewer photons = noisier.
        scale = rng.uniform(*p.poisson_scale)
        base = img.mean(axis=2, keepdims=True) if gray else img
        photons = np.clip(base, 0, 1) * 255.0 / scale
        noise = ((rng.poisson(photons) - photons) * scale / 255.0).astype(np.float32)
    return np.clip(img + noise, 0.0, 1.0)


JPEG_MAX_SIDE = 65_488  # libjpeg's 65500 px a side, rounded down to the 16 px of a 4:2:0 macroblock


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through baseline JPEG (4:2:0, as most encoders write) at ``quality``. Sides beyond what
    JPEG can hold are done in pieces cut on the macroblock grid, so blocks fall where a whole-image JPEG's do."""
    for axis in (0, 1):
        if img.shape[axis] > JPEG_MAX_SIDE:
            parts = [jpeg(part, quality) for part in np.array_split(img, range(JPEG_MAX_SIDE, img.shape[axis], JPEG_MAX_SIDE), axis)]
            return np.concatenate(parts, axis)
    u8 = np.round(np.clip(img, 0, 1) * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("JPEG decoding failed")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def random_jpeg(img: np.ndarray, rng: np.random.Generator, p: Jpeg) -> np.ndarray:
    return jpeg(img, int(round(rng.uniform(*p.quality))))


def stage(img: np.ndarray, rng: np.random.Generator, p: Stage) -> np.ndarray:
    if rng.random() < p.blur.prob:
        img = blur(img, random_kernel(rng, p.blur))
    img = random_resize(img, rng, p.resize)
    img = add_noise(img, rng, p.noise)
    return random_jpeg(img, rng, p.jpeg)


def degrade(image: np.ndarray, scale: int, rng: np.random.Generator, p: Pipeline = Pipeline()) -> np.ndarray:
    """uint8 HxWx3 RGB -> uint8 (H//scale)x(W//scale)x3 RGB, degraded as a real photo would be."""
    h, w = image.shape[:2]
    out_size = (max(1, w // scale), max(1, h // scale))
    img = image.astype(np.float32) / 255.0
    img = stage(img, rng, p.first)
    if rng.random() < p.second_prob:
        img = stage(img, rng, p.second)

    def final_resize(x: np.ndarray) -> np.ndarray:
        x = resize(x, out_size, str(rng.choice(p.first.resize.modes)))
        if rng.random() < p.final_sinc_prob:
            size = int(rng.choice(p.first.blur.kernel_sizes))
            x = blur(x, sinc_kernel(size, rng.uniform(math.pi / 3, math.pi)))
        return x

    if rng.random() < 0.5:
        img = random_jpeg(final_resize(img), rng, p.second.jpeg)
    else:
        img = final_resize(random_jpeg(img, rng, p.second.jpeg))
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
