"""Degrade one image: decode -> (classical pipeline | learned model, tiled through its batcher) -> encode.

- ``pipeline``: degradations/pipeline.py with a strength preset; one whole image per job, through the
  ``degrade-pipeline`` worker (a batcher of size 1: bounded queue, 503 when full, its own thread).
- ``learned``: the High-to-Low model (task ``degradation``), tiles planned on the output grid, each tile
  given the request's noise vector. For a scale below the model's, the input is first enlarged (bicubic)
  by model scale / scale, so the degradation is learned-model-like at the output size.
The seed fixes every random choice (pipeline draws, noise vector): same seed + same input = same bytes.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

import degradations as degradation
from app import budget, cpu, errors, imaging
from app.config import Settings
from app.engine import Result, tiled
from app.model import Model
from app.tiling import TilePlan

STRENGTHS = tuple(degradation.PRESETS)


def pipeline_runner(presets: dict[str, degradation.Pipeline]) -> Callable[[np.ndarray, np.ndarray], list[np.ndarray]]:
    """The pipeline worker's batch function (batches of one): [1,H,W,3] uint8 + [1,3] int64 -> [LR]."""

    def run(pixels: np.ndarray, params: np.ndarray) -> list[np.ndarray]:
        seed, scale, preset = (int(v) for v in params[0])
        return [degradation.degrade(pixels[0], scale, np.random.default_rng(seed), presets[STRENGTHS[preset]])]

    return run


def _to_uint8(image: imaging.Decoded) -> np.ndarray:
    if image.pixels.dtype == np.uint16:
        return np.round(image.pixels.astype(np.float32) / 257.0).astype(np.uint8)
    return image.pixels


@dataclass(frozen=True)
class Degradation:
    """What a /degrade request asks for."""

    method: str  # pipeline | learned
    scale: int  # the output is 1/scale of the input on each side
    seed: int  # fixes every random choice
    strength: str = "medium"  # the pipeline's preset
    format: str | None = None  # output format; None: the input's family
    quality: int = 90  # JPEG/WebP quality


async def run(
    model: Model, data: bytes, ask: Degradation, settings: Settings, is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> Result:
    """``model`` is the pipeline worker for method=pipeline, else the learned degradation model."""
    scale, seed = ask.scale, ask.seed
    image = await cpu.run(imaging.decode, data, settings.max_input_pixels, settings.max_input_side, admit=True)
    w, h = image.size
    out_size = (w // scale, h // scale)
    if min(out_size) < 1:
        raise errors.unprocessable(f"a {w}x{h} image is too small to degrade by {scale}: the output would be empty")
    # The input, its uint8 copy, and the pipeline's float32 working copies (blur, noise: a few at a time).
    budget.need(budget.image_bytes(w, h, 1, image.pixels.itemsize, 2 * len(data)) + 48 * w * h)
    fmt = image.output_format(ask.format, out_size)
    pixels = _to_uint8(image)
    if ask.method == "pipeline":
        params = np.array([seed, scale, STRENGTHS.index(ask.strength)], np.int64)
        [future] = model.batcher.submit([(pixels, params)])
        out = await future
    else:
        out = await learned(model, pixels, scale, seed, settings, is_disconnected)
    out = out[: out_size[1], : out_size[0]]
    alpha = None if image.alpha is None else await cpu.run(imaging.resize_alpha, image.alpha, out_size)
    body, media_type = await cpu.run(imaging.encode, out, alpha, image.gray, fmt, ask.quality, None, None, settings.png_compress_level)
    return Result(body, media_type, (w, h), out_size, image.frames)


def output_tile(tile_size: int, scale: int) -> int:
    """The learned model's tile on its output grid: GAN_TILE_SIZE input pixels, at least 8 output pixels."""
    return max(8, tile_size // scale)


async def learned(
    model: Model, pixels: np.ndarray, scale: int, seed: int, settings: Settings,
    is_disconnected: Callable[[], Awaitable[bool]] | None,
) -> np.ndarray:
    s = model.scale
    h, w = pixels.shape[:2]
    out_w, out_h = w // scale, h // scale
    if scale != s:  # enlarge so that the model's x{s} reduction lands on the asked size
        big = (out_w * s, out_h * s)
        if big[0] * big[1] > settings.max_output_pixels:
            raise errors.too_large(f"degrading by {scale} with the x{s} model needs a {big[0]}x{big[1]} intermediate; "
                                   f"the limit is {settings.max_output_pixels} pixels (GAN_MAX_OUTPUT_PIXELS)")
        pixels = await cpu.run(lambda: np.asarray(Image.fromarray(pixels).resize(big, Image.Resampling.BICUBIC)))
    else:
        pixels = pixels[: out_h * s, : out_w * s]
    tile = output_tile(settings.tile_size, s)
    plan = TilePlan(out_h, out_w, tile, min(settings.tile_overlap // s, (tile - 1) // 2), 1)
    z_dim = int(model.card["inputs"][1]["shape"][1])
    noise = np.random.default_rng(seed).standard_normal(z_dim).astype(np.float32)
    return await tiled(model, pixels, 255, plan, in_scale=s, extra=(noise,), is_disconnected=is_disconnected)
