"""Decode, validate and encode images (Pillow). Trusts the bytes, never the declared content type.

decode() returns pixels as uint8 (or uint16 for 16-bit grey and 16-bit colour PNG/TIFF) HxWx3 RGB, the alpha
channel apart, what the output should look like (grayscale or colour, bit depth, default format), and the ICC
profile and EXIF block to carry over (EXIF orientation is applied to the pixels and reset). Animated inputs
(GIF, APNG, animated WebP) are served by their first frame; the response says so in a header.

Pillow reads 16-bit colour as 8 bits, so those images are decoded and written by OpenCV instead; the ICC profile
and EXIF are added to such a PNG as chunks (a 16-bit colour TIFF keeps its 16 bits but not its ICC profile or EXIF).
"""
from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from app import errors

# Formats we accept, by what Pillow sniffs from the bytes. MPO is the multi-picture JPEG many phones write.
INPUT_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "BMP", "TIFF", "GIF"}
OUTPUT_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp"),
                  "tiff": ("TIFF", "image/tiff")}
MAX_SIDE = {"jpeg": 65_500, "webp": 16_383}  # what the encoders can write; PNG and TIFF have no practical limit
DEFAULT_OUTPUT = {"JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "TIFF": "tiff"}  # everything else -> png
SIXTEEN_BIT_FORMATS = {"png", "tiff"}  # the outputs that keep 16 bits per channel
ORIENTATION = 0x0112  # the EXIF tag
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
    icc: bytes | None = None  # the ICC colour profile, written back into the output
    exif: bytes | None = None  # the EXIF block, orientation reset (the pixels are already turned upright)

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


def open_checked(data: bytes, max_pixels: int, max_side: int = 1 << 31) -> Image.Image:
    """The image's header, read and checked against the limits (4xx errors); no pixel is decoded yet.

    Cheap enough to run before accepting work for later (POST /v1/jobs)."""
    if not data:
        raise errors.bad_request("no image: the body (or the multipart field 'image') is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only our formats' parsers see the bytes; Pillow's bomb check (its limit set above ours, in
            # app.main) refuses absurd sizes before we even look.
            im = Image.open(io.BytesIO(data), formats=OPENERS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise errors.too_large(f"image is far over the limit of {max_pixels} pixels (GAN_MAX_INPUT_PIXELS)") from None
    except UnidentifiedImageError:
        raise errors.unsupported_media(
            "not an image in a supported format (PNG, JPEG, WebP, BMP, TIFF, GIF)"
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
    return im


def decode(data: bytes, max_pixels: int, max_side: int = 1 << 31) -> Decoded:
    im = open_checked(data, max_pixels, max_side)
    fmt = str(im.format)  # one of INPUT_FORMATS
    deep = _sixteen_bit_colour(im)  # before anything loads the pixels (reading a PNG's EXIF does)
    icc, exif, orientation = _metadata(im)
    if deep:
        return _decode_16bit_colour(data, fmt, icc, exif, orientation)
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
    decoded = _to_arrays(im, frames, fmt)
    return _upright(decoded, orientation, icc, exif)


def _metadata(im: Image.Image) -> tuple[bytes | None, bytes | None, int]:
    """(ICC profile, EXIF without its orientation, the orientation 1-8); a broken EXIF block is dropped."""
    icc = im.info.get("icc_profile") or None
    try:
        exif = im.getexif()
        orientation = int(exif.get(ORIENTATION, 1))
        if ORIENTATION in exif:
            del exif[ORIENTATION]
        block = exif.tobytes() if len(exif) else None
    except Exception:  # a broken EXIF block must not make the image unusable: serve it unrotated, without EXIF
        return icc, None, 1
    return icc, block, orientation if 1 <= orientation <= 8 else 1


def _sixteen_bit_colour(im: Image.Image) -> bool:
    """A 16-bit RGB(A) PNG or TIFF, which Pillow would read as 8 bits."""
    tile = getattr(im, "tile", None)  # what the parser found, before anything is decoded
    if im.mode not in ("RGB", "RGBA") or not tile:
        return False
    args = tile[0][3]
    rawmode = args[0] if isinstance(args, tuple) and args else args
    return isinstance(rawmode, str) and ";16" in rawmode


def _decode_16bit_colour(data: bytes, fmt: str, icc: bytes | None, exif: bytes | None, orientation: int) -> Decoded:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise errors.bad_request("could not decode the 16-bit colour image (truncated or corrupt)")
    rgb = np.ascontiguousarray(arr[..., 2::-1])  # BGR(A) -> RGB
    alpha = None
    if arr.shape[2] == 4 and arr[..., 3].min() < 65535:
        alpha = np.round(arr[..., 3] / 257.0).astype(np.uint8)
    return _upright(Decoded(rgb, alpha, False, fmt), orientation, icc, exif)


def _upright(d: Decoded, orientation: int, icc: bytes | None, exif: bytes | None) -> Decoded:
    """Apply an EXIF orientation (1-8) to the pixels and alpha, as Pillow's ImageOps.exif_transpose does."""
    def turn(a: np.ndarray) -> np.ndarray:
        if orientation in (5, 6, 7, 8):
            a = a.swapaxes(0, 1)  # transpose: 5; then a flip makes the rotations
        flip = {2: (1,), 3: (0, 1), 4: (0,), 6: (1,), 7: (0, 1), 8: (0,)}.get(orientation, ())
        return np.ascontiguousarray(np.flip(a, flip)) if flip else a

    if orientation != 1:
        d.pixels = turn(d.pixels)
        d.alpha = None if d.alpha is None else turn(d.alpha)
    d.icc, d.exif = icc, exif
    return d


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


def resize(pixels: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """uint8/uint16 HxWx3 to (width, height): Lanczos (8x8) when enlarging, area when shrinking; and which it was."""
    if size == (pixels.shape[1], pixels.shape[0]):
        return pixels, "none"
    up = size[0] * size[1] > pixels.shape[0] * pixels.shape[1]
    kind = cv2.INTER_LANCZOS4 if up else cv2.INTER_AREA
    out = cv2.resize(pixels, size, interpolation=kind)  # written straight into the output: no float copy
    return out, "lanczos" if up else "area"


def encode(
    pixels: np.ndarray, alpha: np.ndarray | None, gray: bool, fmt: str, quality: int,
    icc: bytes | None = None, exif: bytes | None = None, png_level: int = 2,
) -> tuple[bytes, str]:
    """uint8/uint16 HxWx3 RGB (+ alpha) -> (bytes, media type). JPEG has no alpha: it is flattened onto white.
    16 bits are kept in PNG and TIFF; the ICC profile and EXIF are written where the format holds them.
    ``png_level``: zlib's level for PNG (GAN_PNG_COMPRESS_LEVEL; Pillow's own default, 6, takes as long as the
    model on a 512 px output)."""
    pil_format, media_type = OUTPUT_FORMATS[fmt]
    sixteen = pixels.dtype == np.uint16 and fmt in SIXTEEN_BIT_FORMATS
    if sixteen and not gray:
        body = _encode_16bit_colour(pixels, alpha, fmt, png_level)
        return (_png_with_metadata(body, icc, exif) if fmt == "png" else body), media_type
    if sixteen and gray and alpha is None:
        im = Image.fromarray(luma16(pixels))
    else:
        if pixels.dtype == np.uint16:
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
    meta = {k: v for k, v in (("icc_profile", icc), ("exif", exif)) if v}
    if fmt == "png":
        im.save(buf, pil_format, compress_level=png_level, **meta)
    elif fmt == "jpeg":
        im.save(buf, pil_format, quality=quality, optimize=False, **meta)
    elif fmt == "tiff":
        im.save(buf, pil_format, compression="tiff_adobe_deflate", **meta)
    else:
        im.save(buf, pil_format, quality=quality, method=4, **meta)
    return buf.getvalue(), media_type


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """OpenCV's PNG with the ICC profile (iCCP) and EXIF (eXIf) chunks after its header chunk, as Pillow writes them."""
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length + type, its 13 bytes, CRC
    return png[:end_of_ihdr] + extra + png[end_of_ihdr:]


def _encode_16bit_colour(pixels: np.ndarray, alpha: np.ndarray | None, fmt: str, png_level: int) -> bytes:
    bgr = pixels[..., ::-1]
    if alpha is not None:
        bgr = np.concatenate([bgr, (alpha.astype(np.uint16) * 257)[..., None]], axis=2)
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_level] if fmt == "png" else []
    ok, buf = cv2.imencode("." + fmt, np.ascontiguousarray(bgr), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a 16-bit {fmt}")
    return buf.tobytes()


def luma16(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint16 RGB as uint16, computed a band of rows at a time in float32 (no image-sized float64)."""
    out = np.empty(pixels.shape[:2], np.uint16)
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    for y in range(0, pixels.shape[0], 256):
        band = pixels[y : y + 256].astype(np.float32) @ weights
        out[y : y + 256] = np.clip(np.round(band), 0, 65535)
    return out
