"""Upscale one decoded image with one model: tiles -> batcher -> stitch, a tile row at a time.

The next tile row is queued while the current one is computed, so a large image keeps the batcher fed,
while memory stays at about two tile rows plus the output. When the request ends early (deadline,
client gone, error), every tile it still has queued is cancelled and skipped by the batcher.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np

from app import errors, imaging
from app.batching import QueueFull
from app.config import Settings
from app.registry import Model
from app.tiling import Stitcher, TilePlan


class ClientGone(Exception):
    """The client closed the connection: nobody is left to answer."""


@contextlib.asynccontextmanager
async def admitted(model: Model, settings: Settings) -> AsyncIterator[None]:
    """A request slot on the model (503 at once when all are taken) and the request deadline (504)."""
    try:
        with model.batcher.admit():
            async with asyncio.timeout(settings.request_timeout_s):
                yield
    except QueueFull:
        raise errors.overloaded(settings.retry_after_s) from None
    except TimeoutError:
        raise errors.timeout(f"the request took longer than {settings.request_timeout_s:g}s (GAN_REQUEST_TIMEOUT_S)") from None


async def upscale(
    model: Model, image: imaging.Decoded, tile: int, overlap: int,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> np.ndarray:
    h, w = image.pixels.shape[:2]
    plan = TilePlan(h, w, tile, overlap, model.scale)
    stitcher = Stitcher(plan, image.pixels.dtype.type)
    model.batcher.observe_request(plan.count)

    async def submit(row: int) -> list[asyncio.Future]:
        tiles = await asyncio.to_thread(plan.row_tiles, image.pixels, row, image.maxval)
        return model.batcher.submit(tiles)

    # Only the current and the next row are referenced: finished rows' outputs are freed as we go.
    current: list[asyncio.Future] = await submit(0)
    following: list[asyncio.Future] = []
    try:
        for row in range(plan.rows):
            following = await submit(row + 1) if row + 1 < plan.rows else []
            outputs = await asyncio.gather(*current)
            await asyncio.to_thread(stitcher.add_row, row, outputs)
            del outputs
            if is_disconnected is not None and row + 1 < plan.rows and await is_disconnected():
                raise ClientGone()
            current = following
    finally:
        for f in (*current, *following):
            if not f.done():
                f.cancel()
    return stitcher.out
