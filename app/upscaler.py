"""Upscale one image with one model: decode -> tiles -> batcher -> stitch -> encode.

Tiles are queued a few batches ahead of the stitcher, so a large image keeps the batcher fed, while memory
stays a few tiles plus the output. When the request ends early (deadline, client gone, error), every tile
it still has queued is cancelled and skipped by the batcher.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from app import budget, cpu, errors, faces, imaging, metrics
from app.batching import QueueFull
from app.config import Settings
from app.registry import Model
from app.tiling import Stitcher, TilePlan


class ClientGone(Exception):
    """The client closed the connection: nobody is left to answer."""


@contextlib.asynccontextmanager
async def admitted(models: list[Model], settings: Settings) -> AsyncIterator[None]:
    """A request slot on each model it will use (503 at once when one is full) and the request deadline (504)."""
    try:
        with contextlib.ExitStack() as slots:
            for m in models:
                slots.enter_context(m.batcher.admit())
            async with asyncio.timeout(settings.request_timeout_s):
                yield
    except QueueFull:
        raise errors.overloaded(settings.retry_after_s) from None
    except TimeoutError:
        raise errors.timeout(f"the request took longer than {settings.request_timeout_s:g}s (GAN_REQUEST_TIMEOUT_S)") from None


async def tiled(
    model: Model, pixels: np.ndarray, maxval: int, plan: TilePlan, in_scale: int = 1, extra: tuple[np.ndarray, ...] = (),
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> np.ndarray:
    """Run ``pixels`` through the model tile by tile (see TilePlan.cut for ``in_scale``); ``extra`` are further
    model inputs given with every tile (the degradation model's noise vector).

    Tiles are cut and queued in raster order, two batches ahead of the stitcher (within budget.AHEAD_BYTES):
    enough to keep the batcher fed, while memory stays a few tiles plus the output, whatever the image's size.
    """
    stitcher = Stitcher(plan, pixels.dtype.type)
    model.batcher.observe_request(plan.count)
    metrics.IMAGE_PIXELS.labels(model.name).inc(plan.height * plan.width)
    metrics.COMPUTED_PIXELS.labels(model.name).inc(plan.computed_pixels)
    ahead = budget.tiles_ahead(plan.tile_h, plan.tile_w, plan.scale, model.batcher.max_batch)
    positions = plan.positions()
    pending: deque[asyncio.Future] = deque()

    left = plan.count  # tiles not cut yet

    def cut(n: int) -> list[np.ndarray]:
        return [plan.cut(pixels, r, c, maxval, in_scale) for r, c in itertools.islice(positions, n)]

    async def refill() -> None:
        nonlocal left
        tiles = await cpu.run(cut, min(left, ahead - len(pending)))
        left -= len(tiles)
        pending.extend(model.batcher.submit([(t, *extra) for t in tiles] if extra else tiles))

    try:
        await refill()
        while pending:
            output = await pending.popleft()
            await cpu.run(stitcher.add, output)
            del output
            if left and len(pending) <= ahead // 2:
                if is_disconnected is not None and await is_disconnected():
                    raise ClientGone()
                await refill()
    finally:
        for f in pending:
            if not f.done():
                f.cancel()
    return stitcher.out


async def upscale(
    model: Model, image: imaging.Decoded, tile: int, overlap: int,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> np.ndarray:
    """The model's upscale of a decoded image, tiled by ``tile`` / ``overlap`` (input pixels)."""
    h, w = image.pixels.shape[:2]
    plan = TilePlan(h, w, tile, overlap, model.scale)
    return await tiled(model, image.pixels, image.maxval, plan, is_disconnected=is_disconnected)


@dataclass
class Result:
    body: bytes
    media_type: str
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    frames: int
    headers: dict[str, str] = field(default_factory=dict)  # what the work has to tell (e.g. faces enhanced)


async def run(
    model: Model, data: bytes, fmt: str | None, quality: int, settings: Settings,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None, face_model: Model | None = None,
) -> Result:
    """Bytes in, encoded upscaled image out, with every limit checked before the model runs; with a
    ``face_model``, the faces in the image are upscaled by it (app/faces.py)."""
    image = await cpu.run(imaging.decode, data, settings.max_input_pixels, settings.max_input_side, admit=True)
    w, h = image.size
    out_size = (w * model.scale, h * model.scale)
    if out_size[0] * out_size[1] > settings.max_output_pixels:
        raise errors.too_large(
            f"output would be {out_size[0]}x{out_size[1]} = {out_size[0] * out_size[1]} pixels; the limit is "
            f"{settings.max_output_pixels} (GAN_MAX_OUTPUT_PIXELS)"
        )
    plan = TilePlan(h, w, settings.tile_size, settings.tile_overlap, model.scale)
    budget.need(budget.image_bytes(w, h, model.scale, image.pixels.itemsize, 2 * len(data))
                + budget.tile_bytes(plan.tile_h, plan.tile_w, model.scale, model.batcher.max_batch, out_size[0], settings.tile_overlap))
    fmt = image.output_format(fmt, out_size)
    pixels = await tiled(model, image.pixels, image.maxval, plan, is_disconnected=is_disconnected)
    headers = {}
    if face_model is not None:
        n = await faces.enhance(face_model, image.pixels, image.maxval, pixels, model.scale, settings.face_min_px, settings.face_max_px)
        headers = {"X-Faces-Enhanced": str(n), "X-Face-Model": face_model.name}
    alpha = None if image.alpha is None else await cpu.run(imaging.resize_alpha, image.alpha, out_size)
    body, media_type = await cpu.run(imaging.encode, pixels, alpha, image.gray, fmt, quality)
    return Result(body, media_type, (w, h), out_size, image.frames, headers)
