"""Image folders and the random (LR, HR) patch sampler for super-resolution training.

Images are decoded once into memory (uint8 HWC RGB). Each batch draws HR patches uniformly over all
patch positions of all images (so images are weighted by area), applies a random flip / 90-degree
rotation, and makes LR on the fly by an antialiased bicubic downscale (Pillow, as MATLAB's imresize).
Everything random comes from one numpy Generator whose state the checkpoint keeps.
"""
from __future__ import annotations

from collections.abc import Iterable
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


def augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 dihedral transforms, chosen at random."""
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.rot90(patch, k=int(rng.integers(4)))


class PatchSampler:
    """Draws batches of (lr, hr) float32 NCHW arrays in [0,1] from images held in memory."""

    def __init__(self, images: list[np.ndarray], hr_patch: int, scale: int, seed: int = 0) -> None:
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

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        p, s = self.hr_patch, self.scale
        hrs, lrs = [], []
        for idx in self.rng.choice(len(self.images), size=batch, p=self.weights):
            im = self.images[idx]
            y = int(self.rng.integers(im.shape[0] - p + 1))
            x = int(self.rng.integers(im.shape[1] - p + 1))
            hr = np.ascontiguousarray(augment(im[y : y + p, x : x + p], self.rng))
            hrs.append(hr)
            lrs.append(bicubic_resize(hr, (p // s, p // s)))
        return to_tensor_batch(lrs), to_tensor_batch(hrs)


def to_tensor_batch(images: list[np.ndarray]) -> np.ndarray:
    """uint8 HWC images -> float32 NCHW in [0,1]."""
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def load_images(paths: list[Path], progress: bool = True) -> list[np.ndarray]:
    from tqdm import tqdm

    return [load_rgb(p) for p in tqdm(paths, desc="loading images", disable=not progress, leave=False)]
