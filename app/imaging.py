"""Decode, validate and encode images (Pillow). Trusts the bytes, never the declared content type.

decode() returns pixels as uint8 (or uint16 for 16-bit grayscale) HxWx3 RGB, the alpha channel apart,
and what the output should look like (grayscale or colour, bit depth, default format). Animated inputs
(GIF, APNG, animated WebP) are served by their first frame; the response says so in a header.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app import errors

# Formats we accept, by what Pillow sniffs from the bytes. MPO is the multi-picture JPEG many phones write.
INPUT_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "BMP", "TIFF", "GIF"}
OUTPUT_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
MAX_SIDE = {"jpeg": 65_500, "webp": 16_383}  # what the encoders can write; PNG has no practical limit
DEFAULT_OUTPUT = {"JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}  # everything else -> png
OPENERS = sorted(INPUT_FORMATS - {"MPO"})  # the parsers tried on the bytes (Pillow's JPEG opener also reads MPO)

# Frames counted at most: counting parses every frame (a TIFF of 40,000 tiny pages took 8 s of CPU).
MAX_FRAMES_COUNTED = 64


@dataclass
class Decoded:
    pixels: np.ndarray  # HxWx3 RGB, uint8 or uint16
    alpha: np.ndarray | None  # HxW uint8, or None
    gray: bool  # the input was grayscale: answer grayscale
    format: str  # Pillow's name of the input format
    frames: int = 1

    @property
    def maxval(self) -> int:
        return 65535 if self.pixels.dtype == np.uint16 else 255

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.pixels.shape[1], self.pixels.shape[0]

    def output_format(self, asked: str | None, out_size: tuple[int, int]) -> str:
        """The format to answer in: the one asked for (413 if it cannot hold the output), else the input's
        family, falling back to PNG when that family cannot hold the output."""
        fits = max(out_size) <= MAX_SIDE.get(asked or "", 1 << 31)
        if asked:
            if not fits:
                raise errors.too_large(
                    f"{asked} cannot hold a {out_size[0]}x{out_size[1]} image (at most {MAX_SIDE[asked]} px a side); ask for png"
                )
            return asked
        default = DEFAULT_OUTPUT.get(self.format, "png")
        return default if max(out_size) <= MAX_SIDE.get(default, 1 << 31) else "png"


def count_frames(im: Image.Image) -> int:
    """Frames of an animated image, counted up to MAX_FRAMES_COUNTED (more reads as that number + 1)."""
    if not getattr(im, "is_animated", False):
        return 1
    n = 1
    try:
        while n <= MAX_FRAMES_COUNTED:
            im.seek(n)
            n += 1
    except EOFError:
        pass
    return n


def decode(data: bytes, max_pixels: int, max_side: int = 1 << 31) -> Decoded:
    if not data:
        raise errors.bad_request("the request has no image: the body (or the multipart field 'image') is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only our formats' parsers see the bytes; Pillow's bomb check (its limit set above ours, in
            # app.main) refuses absurd sizes before we even look.
            im = Image.open(io.BytesIO(data), formats=OPENERS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise errors.too_large(f"image is far over the pixel limit: {e}") from None
    except UnidentifiedImageError:
        raise errors.unsupported_media(
            "the body is not an image in a supported format (PNG, JPEG, WebP, BMP, TIFF, GIF)"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise errors.bad_request(f"could not read the image header: {e}") from None
    if im.format not in INPUT_FORMATS:
        raise errors.unsupported_media(f"image format {im.format} is not supported; send PNG, JPEG, WebP, BMP, TIFF or GIF")
    w, h = im.size
    if w < 1 or h < 1:
        raise errors.bad_request(f"image has an empty size {w}x{h}")
    if w * h > max_pixels:
        raise errors.too_large(
            f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels} pixels (GAN_MAX_INPUT_PIXELS)"
        )
    if max(w, h) > max_side:
        raise errors.too_large(f"image is {w}x{h}; the limit is {max_side} pixels a side (GAN_MAX_INPUT_SIDE)")
    fmt = im.format
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = count_frames(im)  # parsing frames can fail too
            im.seek(0)
            im.load()
    except MemoryError:
        raise
    except Exception as e:  # Pillow's decoders raise many types (OSError, SyntaxError, TypeError, struct.error...)
        raise errors.bad_request(f"could not decode the image (truncated or corrupt): {type(e).__name__}: {e}") from None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not make the image unusable; serve it unrotated
        pass
    return _to_arrays(im, frames, fmt)


def _to_arrays(im: Image.Image, frames: int, fmt: str) -> Decoded:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        g = np.asarray(im).astype(np.uint16)  # one 2-byte copy: no wider intermediate
        return Decoded(np.repeat(g[..., None], 3, axis=2), None, True, fmt, frames)
    if mode == "I":  # 32-bit integer grey: clipped to 16 bits
        g = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return Decoded(np.repeat(g[..., None], 3, axis=2), None, True, fmt, frames)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("1", "F"):
        im = im.convert("L")
    mode = im.mode
    gray = mode in ("L", "LA")
    alpha = None
    if mode in ("LA", "RGBA", "RGBa", "La"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8)
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if alpha is not None and alpha.min() == 255:
        alpha = None  # fully opaque: no need to carry it
    return Decoded(rgb, alpha, gray, fmt, frames)


def resize_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Alpha is not sent through the GAN: bicubic-resized to the output (width, height)."""
    return np.asarray(Image.fromarray(alpha).resize(size, Image.Resampling.BICUBIC))


def encode(pixels: np.ndarray, alpha: np.ndarray | None, gray: bool, fmt: str, quality: int) -> tuple[bytes, str]:
    """uint8/uint16 HxWx3 RGB (+ alpha) -> (bytes, media type). JPEG has no alpha: it is flattened onto white."""
    pil_format, media_type = OUTPUT_FORMATS[fmt]
    sixteen = pixels.dtype == np.uint16
    if sixteen and gray and alpha is None and fmt == "png":
        im = Image.fromarray(luma16(pixels))
    else:
        if sixteen:
            pixels = np.round(pixels.astype(np.float32) / 257.0).astype(np.uint8)
        im = Image.fromarray(pixels, "RGB")
        if gray:
            im = im.convert("L")
        if alpha is not None:
            if fmt == "jpeg":
                bg = Image.new(im.mode, im.size, "white")
                bg.paste(im, mask=Image.fromarray(alpha))
                im = bg
            else:
                im.putalpha(Image.fromarray(alpha))
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, pil_format, compress_level=6)
    elif fmt == "jpeg":
        im.save(buf, pil_format, quality=quality, optimize=False)
    else:
        im.save(buf, pil_format, quality=quality, method=4)
    return buf.getvalue(), media_type


def luma16(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint16 RGB as uint16, computed a band of rows at a time in float32 (no image-sized float64)."""
    out = np.empty(pixels.shape[:2], np.uint16)
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    for y in range(0, pixels.shape[0], 256):
        band = pixels[y : y + 256].astype(np.float32) @ weights
        out[y : y + 256] = np.clip(np.round(band), 0, 65535)
    return out
