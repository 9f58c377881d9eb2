"""Face-aware upscaling (POST /upscale?faces=true): faces are found in the input, each is upscaled by the
face model, and pasted over the general model's output with a feathered mask.

1. ``detect``: OpenCV's bundled Haar frontal-face cascade, run on a 2x enlargement of the input so that
   faces down to ~12 px are found; for inputs over half a megapixel, on a copy of at most DETECT_MAX_PIXELS
   (detection costs about 1.5 s of CPU per megapixel searched), so the smallest face found grows with the
   image (24 px of the searched copy: ~17 px in a 1 MP input, ~34 px in a 4 MP one).
2. ``squares``: a square around each face with some margin (forehead, chin, a little background), its side
   rounded up to a multiple of 8 so that faces of similar size batch together. Squares smaller than
   ``min_px`` or larger than ``max_px`` input pixels are left to the general model (too small to resolve,
   or far larger than the faces the model learned from).
3. The squares are cut at their own resolution (the face model is fully convolutional: no resampling
   blurs them) and go through the face model's batcher as tiles, so faces from concurrent requests share
   its batches.
4. ``paste``: each output is blended into the upscaled image with a mask that is 1 over the face and falls
   off smoothly to 0 at the square's edge, so no seam shows.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from app import cpu
from app.model import Model

CROP_PER_BOX = 1.25  # square side / the Haar box side: the face with its margin, as in the training crops
ALIGN = 8  # square sides are multiples of this, so faces of about the same size share a batch
CROP_SHIFT = 0.08  # the face sits a little high in its Haar box: centre the square this much (x box) lower
FEATHER = 0.2  # the mask ramps from 0 to 1 over this share of the square's side, on every edge
DETECT_MAX_PIXELS = 2_000_000  # the largest image the cascade searches (the input is resized to it)


@dataclass(frozen=True)
class Square:
    x: int
    y: int
    side: int  # in input pixels


@lru_cache
def _cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"could not load the Haar cascade {path}")
    return cascade


def detect(pixels: np.ndarray, maxval: int) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in input pixels, largest first."""
    gray = cv2.cvtColor(np.round(pixels.astype(np.float32) * (255.0 / maxval)).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    f = min(2.0, (DETECT_MAX_PIXELS / (gray.shape[0] * gray.shape[1])) ** 0.5)
    size = (max(1, round(gray.shape[1] * f)), max(1, round(gray.shape[0] * f)))
    gray = cv2.equalizeHist(cv2.resize(gray, size, interpolation=cv2.INTER_CUBIC if f > 1 else cv2.INTER_AREA))
    found = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=6, minSize=(24, 24))
    boxes = [(int(round(x / f)), int(round(y / f)), int(round(w / f)), int(round(h / f))) for x, y, w, h in found]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def squares(boxes: list[tuple[int, int, int, int]], width: int, height: int, min_px: int, max_px: int) -> list[Square]:
    """The square of each face that the face model can take, shifted inside the image."""
    out = []
    for x, y, w, h in boxes:
        side = -(-int(round(max(w, h) * CROP_PER_BOX)) // ALIGN) * ALIGN
        if not min_px <= side <= max_px or side > min(width, height):
            continue
        cx, cy = x + w / 2, y + h / 2 + CROP_SHIFT * h
        sx = int(np.clip(round(cx - side / 2), 0, width - side))
        sy = int(np.clip(round(cy - side / 2), 0, height - side))
        out.append(Square(sx, sy, side))
    return out


def crop(pixels: np.ndarray, maxval: int, sq: Square) -> np.ndarray:
    """The square as a float32 3 x side x side tile in [0,1]."""
    part = pixels[sq.y : sq.y + sq.side, sq.x : sq.x + sq.side]
    return np.ascontiguousarray(part.transpose(2, 0, 1), dtype=np.float32) / maxval


def feather_mask(side: int) -> np.ndarray:
    """side x side weights: 1 inside, a raised-cosine fall to 0 over the outer FEATHER of each edge."""
    ramp = max(1, int(round(side * FEATHER)))
    t = np.ones(side, np.float32)
    edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp, dtype=np.float32) + 0.5) / ramp)
    t[:ramp], t[side - ramp :] = edge, edge[::-1]
    return np.minimum(t[:, None], t[None, :])


def paste(out: np.ndarray, maxval: int, sq: Square, scale: int, face: np.ndarray) -> None:
    """Blend one face model output (3 x s x s in [0,1]) into ``out``, the x``scale`` image, in place."""
    side = sq.side * scale
    face = np.clip(face.transpose(1, 2, 0), 0, 1)
    if face.shape[0] != side:  # a general model of another scale than the face model's
        face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA if side < face.shape[0] else cv2.INTER_CUBIC)
    y, x = sq.y * scale, sq.x * scale
    region = out[y : y + side, x : x + side].astype(np.float32)
    m = feather_mask(side)[..., None]
    out[y : y + side, x : x + side] = np.round(np.clip(region * (1 - m) + face * maxval * m, 0, maxval)).astype(out.dtype)


async def enhance(
    face_model: Model, pixels: np.ndarray, maxval: int, out: np.ndarray, scale: int, min_px: int, max_px: int
) -> int:
    """Paste face-model results over ``out``, the general model's x``scale`` upscale of ``pixels``; the
    number of faces enhanced."""
    h, w = pixels.shape[:2]
    boxes = await cpu.run(detect, pixels, maxval)
    found = squares(boxes, w, h, min_px, max_px)
    found = [sq for i, sq in enumerate(found) if not any(_overlaps(sq, other) for other in found[:i])]
    if not found:
        return 0
    tiles = [crop(pixels, maxval, sq) for sq in found]
    faces = await asyncio.gather(*face_model.batcher.submit(tiles))
    for sq, face in zip(found, faces):
        await cpu.run(paste, out, maxval, sq, scale, face)
    return len(found)


def _overlaps(a: Square, b: Square) -> bool:
    """More than half of the smaller square covered by the other: the same face found twice."""
    ix = max(0, min(a.x + a.side, b.x + b.side) - max(a.x, b.x))
    iy = max(0, min(a.y + a.side, b.y + b.side) - max(a.y, b.y))
    return ix * iy > 0.5 * min(a.side, b.side) ** 2
