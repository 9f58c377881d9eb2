"""Upscale one decoded image with one model: tiles -> batcher -> stitch, a tile row at a time.

The next tile row is queued while the current one is computed, so a large image keeps the batcher fed,
while memory stays at about two tile rows plus the output. When the request ends early (deadline,
client gone, error), every tile it still has queued is cancelled and skipped by the batcher.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from app import errors, imaging, metrics
from app.batching import QueueFull
from app.registry import Model
from app.tiling import Stitcher, TilePlan


class ClientGone(Exception):
    pass


async def upscale(
    model: Model, image: imaging.Decoded, tile: int, overlap: int,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> np.ndarray:
    h, w = image.pixels.shape[:2]
    plan = TilePlan(h, w, tile, overlap, model.scale)
    stitcher = Stitcher(plan, image.pixels.dtype.type)
    metrics.TILES_PER_REQUEST.labels(model.name).observe(plan.count)
    batcher = model.batcher

    def submit(row: int) -> list[asyncio.Future]:
        return batcher.submit(plan.row_tiles(image.pixels, row, image.maxval))

    # Only the current and the next row are referenced: finished rows' outputs are freed as we go.
    current: list[asyncio.Future] = submit(0)
    following: list[asyncio.Future] = []
    try:
        for row in range(plan.rows):
            following = submit(row + 1) if row + 1 < plan.rows else []
            outputs = await asyncio.gather(*current)
            if plan.rows > 1:
                await asyncio.to_thread(stitcher.add_row, row, outputs)
            else:
                stitcher.add_row(row, outputs)
            del outputs
            if is_disconnected is not None and row + 1 < plan.rows and await is_disconnected():
                raise ClientGone()
            current = following
    finally:
        for f in (*current, *following):
            if not f.done():
                f.cancel()
    return stitcher.out


async def run_request(model: Model, image: imaging.Decoded, settings, is_disconnected=None) -> np.ndarray:
    """Admission (503 when full) and deadline (504) around ``upscale``."""
    try:
        with model.batcher.admit():
            metrics.IN_FLIGHT.labels(model.name).set(model.batcher.in_flight)
            try:
                async with asyncio.timeout(settings.request_timeout_s):
                    return await upscale(model, image, settings.tile_size, settings.tile_overlap, is_disconnected)
            finally:
                metrics.IN_FLIGHT.labels(model.name).set(model.batcher.in_flight - 1)
    except QueueFull:
        raise errors.overloaded(settings.retry_after_s) from None
    except TimeoutError:
        raise errors.timeout(f"the request took longer than {settings.request_timeout_s:g}s (GAN_REQUEST_TIMEOUT_S)") from None
