"""Upscale one image with one model: decode -> tiles (app/engine.py: batcher, stitcher) -> faces -> resize -> encode."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

from app import budget, cpu, errors, faces, imaging
from app.config import Settings
from app.engine import Result, tiled
from app.model import Model
from app.tiling import TilePlan


async def upscale(
    model: Model, image: imaging.Decoded, tile: int, overlap: int,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> np.ndarray:
    """The model's upscale of a decoded image, tiled by ``tile`` / ``overlap`` (input pixels)."""
    h, w = image.pixels.shape[:2]
    plan = TilePlan(h, w, tile, overlap, model.scale)
    return await tiled(model, image.pixels, image.maxval, plan, is_disconnected=is_disconnected)


def output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size of an image ``scale`` times larger (rounded, at least 1 px a side), as Real-ESRGAN's --outscale."""
    return max(1, round(width * scale)), max(1, round(height * scale))


async def run(
    model: Model, data: bytes, fmt: str | None, quality: int, settings: Settings,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None, face_model: Model | None = None,
    scale: float | None = None,
) -> Result:
    """Bytes in, encoded upscaled image out, with every limit checked before the model runs; with a
    ``face_model``, the faces in the image are upscaled by it (app/faces.py). With a ``scale`` other than the
    model's, the model's output is resized to exactly that scale (imaging.resize: Lanczos up, area down)."""
    image = await cpu.run(imaging.decode, data, settings.max_input_pixels, settings.max_input_side, admit=True)
    w, h = image.size
    model_size = (w * model.scale, h * model.scale)
    out_size = output_size(w, h, scale or model.scale)
    for what, (ow, oh) in (("output", out_size), ("the model's output (before the resize to the scale asked)", model_size)):
        if ow * oh > settings.max_output_pixels:
            raise errors.too_large(
                f"{what} would be {ow}x{oh} = {ow * oh} pixels; the limit is {settings.max_output_pixels} (GAN_MAX_OUTPUT_PIXELS)"
            )
    plan = TilePlan(h, w, settings.tile_size, settings.tile_overlap, model.scale)
    resized = out_size != model_size
    budget.need(budget.image_bytes(w, h, model.scale, image.pixels.itemsize, 2 * len(data))
                + (out_size[0] * out_size[1] * 3 * image.pixels.itemsize if resized else 0)
                + budget.tile_bytes(plan.tile_h, plan.tile_w, model.scale, model.batcher.max_batch, model_size[0], settings.tile_overlap))
    fmt = image.output_format(fmt, out_size)
    pixels = await tiled(model, image.pixels, image.maxval, plan, is_disconnected=is_disconnected)
    headers = {"X-Model-Scale": str(model.scale), "X-Scale": f"{scale or model.scale:g}"}
    if face_model is not None:
        n = await faces.enhance(face_model, image.pixels, image.maxval, pixels, model.scale, settings.face_min_px, settings.face_max_px)
        headers |= {"X-Faces-Enhanced": str(n), "X-Face-Model": face_model.name}
    pixels, how = await cpu.run(imaging.resize, pixels, out_size)
    headers["X-Resize"] = how if how == "none" else f"{how} {model_size[0]}x{model_size[1]} -> {out_size[0]}x{out_size[1]}"
    alpha = None if image.alpha is None else await cpu.run(imaging.resize_alpha, image.alpha, out_size)
    body, media_type = await cpu.run(imaging.encode, pixels, alpha, image.gray, fmt, quality, image.icc, image.exif,
                                     settings.png_compress_level)
    return Result(body, media_type, (w, h), out_size, image.frames, headers)
