"""Image folders and the random (LR, HR) patch sampler for super-resolution training.

Images are decoded once into memory (uint8 HWC RGB). Each batch draws HR patches uniformly over all
patch positions of all images (so images are weighted by area), applies a random flip / 90-degree
rotation, and makes LR on the fly: by default an antialiased bicubic downscale (Pillow, as MATLAB's
imresize); for real-world models the degradation pipeline and/or a learned High-to-Low generator.
Everything random comes from one numpy Generator whose state the checkpoint keeps.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(roots: Iterable[str | Path]) -> list[Path]:
    """All image files under the given folders (recursive), sorted for reproducibility."""
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            files.append(root)
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"no such folder: {root}")
        files += [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files)


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 HxWx3 RGB, honouring EXIF orientation."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def bicubic_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bicubic resize of a uint8 HxWx3 array to (width, height)."""
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC))


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w = hr.shape[:2]
    return bicubic_resize(hr, (w // scale, h // scale))


def augment(patch: np.ndarray, rng: np.random.Generator, upright: bool = False) -> np.ndarray:
    """One of the 8 dihedral transforms, chosen at random; ``upright``: a left-right flip or not (aligned faces)."""
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return patch if upright else np.rot90(patch, k=int(rng.integers(4)))


def unsharp_mask(batch: np.ndarray, weight: float, radius: int = 11, threshold: float = 10 / 255) -> np.ndarray:
    """NCHW float images in [0, 1] sharpened as Real-ESRGAN sharpens the target of its pixel loss: plus ``weight`` x
    the detail (the image minus its Gaussian blur over ``radius`` px, odd), faded in by a blurred mask of where the
    detail exceeds ``threshold``, so that edges gain contrast while flat areas and faint noise stay as they are.
    Real-ESRGAN blurs over 51 px; applied to real-x4-l1's output, 51 px cost 0.6-0.85 dB on the realistic
    degradations of Set14 and 11 px none at weight 0.5, for about the same gain in NIQE (README, restoration)."""
    if weight == 0:
        return batch
    import cv2

    out = np.empty_like(batch)
    for i, chw in enumerate(batch):
        img = np.ascontiguousarray(chw.transpose(1, 2, 0))
        detail = img - cv2.GaussianBlur(img, (radius, radius), 0)
        mask = cv2.GaussianBlur((np.abs(detail) > threshold).astype(np.float32), (radius, radius), 0)
        sharp = np.clip(img + weight * detail, 0.0, 1.0)
        out[i] = (img + mask.reshape(img.shape) * (sharp - img)).transpose(2, 0, 1)
    return out


def is_bicubic(lr: np.ndarray, hr: np.ndarray, scale: int) -> np.ndarray:
    """Per patch of NCHW float batches (from ``to_tensor_batch``): is the LR exactly the bicubic downscale of the HR
    (the clean share of a mixed degradation), rather than a degraded one?"""
    return np.array([np.array_equal(a, downscale(b, scale)) for a, b in zip(to_uint8_batch(lr), to_uint8_batch(hr))], dtype=bool)


LRMaker = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def bicubic_lr(hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    return downscale(hr, scale)


def pipeline_lr(preset: str = "medium") -> LRMaker:
    """The classical pipeline at a named strength; ``light+medium`` draws one of them per patch, equal odds."""
    from degradations import PRESETS, degrade

    if "+" in preset:
        return mixed_lr([pipeline_lr(p) for p in preset.split("+")])
    params = PRESETS[preset]
    return lambda hr, scale, rng: degrade(hr, scale, rng, params)


def learned_lr(h2l_model: str | Path) -> LRMaker:
    """LR from an exported High-to-Low generator (ONNX: image + noise -> image), noise drawn from rng."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(h2l_model), opts, providers=["CPUExecutionProvider"])
    z_dim = sess.get_inputs()[1].shape[1]

    def make(hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((1, z_dim)).astype(np.float32)
        out = sess.run(None, {"image": to_tensor_batch([hr]), "noise": z})[0][0]
        return np.round(np.clip(out, 0, 1).transpose(1, 2, 0) * 255.0).astype(np.uint8)

    return make


def mixed_lr(makers: list[LRMaker]) -> LRMaker:
    return lambda hr, scale, rng: makers[int(rng.integers(len(makers)))](hr, scale, rng)


def lr_maker(kind: str, preset: str = "medium", h2l_model: str | Path = "") -> LRMaker:
    """The LR source named in a training config; ``a+b`` draws from each source with equal odds."""
    if "+" in kind:
        return mixed_lr([lr_maker(k, preset, h2l_model) for k in kind.split("+")])
    if kind in ("learned", "mixed") and not h2l_model:
        raise ValueError(f"degradation '{kind}' needs an exported High-to-Low model (h2l_model)")
    if kind == "bicubic":
        return bicubic_lr
    if kind == "pipeline":
        return pipeline_lr(preset)
    if kind == "learned":
        return learned_lr(h2l_model)
    if kind == "mixed":
        return mixed_lr([pipeline_lr(preset), learned_lr(h2l_model)])
    raise ValueError(f"unknown degradation '{kind}' (bicubic, pipeline, learned, mixed)")


class PatchSampler:
    """Draws batches of (lr, hr) float32 NCHW arrays in [0,1] from images held in memory."""

    def __init__(
        self, images: list[np.ndarray], hr_patch: int, scale: int, seed: int = 0, make_lr: LRMaker = bicubic_lr, gray: float = 0.0,
        upright: bool = False,
    ) -> None:
        if hr_patch % scale:
            raise ValueError(f"hr_patch {hr_patch} is not a multiple of scale {scale}")
        self.images = [im for im in images if min(im.shape[:2]) >= hr_patch]
        if not self.images:
            raise ValueError(f"no training image is at least {hr_patch}px on its short side")
        self.skipped = len(images) - len(self.images)
        self.hr_patch, self.scale = hr_patch, scale
        positions = np.array([(im.shape[0] - hr_patch + 1) * (im.shape[1] - hr_patch + 1) for im in self.images], float)
        self.weights = positions / positions.sum()
        self.rng = np.random.default_rng(seed)
        self.make_lr = make_lr
        self.gray = gray  # the share of patches turned grayscale (kept as 3 equal channels) before LR is made
        self.upright = upright

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        p, s = self.hr_patch, self.scale
        hrs, lrs = [], []
        for idx in self.rng.choice(len(self.images), size=batch, p=self.weights):
            im = self.images[idx]
            y = int(self.rng.integers(im.shape[0] - p + 1))
            x = int(self.rng.integers(im.shape[1] - p + 1))
            hr = np.ascontiguousarray(augment(im[y : y + p, x : x + p], self.rng, self.upright))
            if self.gray and self.rng.random() < self.gray:
                hr = to_gray(hr)
            hrs.append(hr)
            lrs.append(self.make_lr(hr, s, self.rng))
        return to_tensor_batch(lrs), to_tensor_batch(hrs)


def to_gray(img: np.ndarray) -> np.ndarray:
    """uint8 RGB -> the same image in grayscale (ITU-R 601 luma, as Pillow's "L"), still 3 channels."""
    return np.repeat(np.asarray(Image.fromarray(img).convert("L"))[..., None], 3, axis=2)


def to_tensor_batch(images: list[np.ndarray]) -> np.ndarray:
    """uint8 HWC images -> float32 NCHW in [0,1]."""
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def to_uint8_batch(batch: np.ndarray) -> np.ndarray:
    """float NCHW in [0,1] (clipped) -> uint8 NHWC: the inverse of ``to_tensor_batch``."""
    return np.round(np.clip(batch, 0, 1).transpose(0, 2, 3, 1) * 255.0).astype(np.uint8)


def resize_short_side(img: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize so that the short side is ``size`` pixels (aspect kept)."""
    h, w = img.shape[:2]
    k = size / min(h, w)
    return bicubic_resize(img, (max(size, round(w * k)), max(size, round(h * k))))


def load_images(paths: list[Path], progress: bool = True, resize: int = 0) -> list[np.ndarray]:
    """Decode all images; with ``resize``, each is resized to that short side (e.g. whole aligned faces)."""
    from tqdm import tqdm

    images = (load_rgb(p) for p in tqdm(paths, desc="loading images", disable=not progress, leave=False))
    return [resize_short_side(im, resize) if resize else im for im in images]
