"""The inference engine every image kind runs on: a request's admission (a slot on each model it uses, its
deadline), and ``tiled``, which runs an image through a model tile by tile: tiles -> the model's batcher ->
stitcher. Tiles are queued a few batches ahead of the stitcher, so a large image keeps the batcher fed, while
memory stays a few tiles plus the output. When the request ends early (deadline, client gone, error), every tile
it still has queued is cancelled and skipped by the batcher. ``Result`` is what a request hands back to its route.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from app import budget, cpu, errors, metrics
from app.batching import QueueFull
from app.config import Settings
from app.model import Model
from app.tiling import Stitcher, TilePlan


class ClientGone(Exception):
    """The client closed the connection: nobody is left to answer."""


# Set while a request is served: its deadline (time.monotonic()) when it has one, and a callback for its
# progress (tiles done, tiles in all), which an async job reports.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
PROGRESS: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar("progress", default=None)


@contextlib.asynccontextmanager
async def admitted(models: list[Model], settings: Settings, deadline: bool = True) -> AsyncIterator[None]:
    """A request slot on each model it will use (503 at once when one is full) and the request deadline (504);
    async jobs (``deadline=False``) have none."""
    try:
        with contextlib.ExitStack() as slots:
            for m in models:
                slots.enter_context(m.batcher.admit())
            if not deadline:
                yield
                return
            token = DEADLINE.set(time.monotonic() + settings.request_timeout_s)
            try:
                async with asyncio.timeout(settings.request_timeout_s):
                    yield
            finally:
                DEADLINE.reset(token)
    except QueueFull:
        raise errors.overloaded(settings.retry_after_s) from None
    except TimeoutError:
        raise errors.timeout(f"the request took longer than {settings.request_timeout_s:g}s (GAN_REQUEST_TIMEOUT_S)") from None


def check_time(model: Model, plan: TilePlan) -> None:
    """Refuse at once (413) work that the measured speed of the model says cannot end before the deadline."""
    deadline, rate = DEADLINE.get(), model.batcher.pixels_per_s
    if deadline is None or not rate:
        return
    estimate = plan.computed_pixels / rate
    left = deadline - time.monotonic()
    if estimate > left:
        raise errors.too_slow(
            f"this image needs about {estimate:.0f}s of {model.name} at its measured speed ({rate / 1e6:.2f} MP/s), more than "
            f"the {left:.0f}s left before the deadline (GAN_REQUEST_TIMEOUT_S); send the same request to POST /v1/jobs "
            f"and fetch the result when it is done"
        )


async def tiled(
    model: Model, pixels: np.ndarray, maxval: int, plan: TilePlan, in_scale: int = 1, extra: tuple[np.ndarray, ...] = (),
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> np.ndarray:
    """Run ``pixels`` through the model tile by tile (see TilePlan.cut for ``in_scale``); ``extra`` are further
    model inputs given with every tile (the degradation model's noise vector).

    Tiles are cut and queued in raster order, two batches ahead of the stitcher (within budget.AHEAD_BYTES):
    enough to keep the batcher fed, while memory stays a few tiles plus the output, whatever the image's size.
    """
    check_time(model, plan)
    stitcher = Stitcher(plan, pixels.dtype.type)
    progress, done = PROGRESS.get(), 0
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
            done += 1
            if progress is not None:
                progress(done, plan.count)
            if left and len(pending) <= ahead // 2:
                if is_disconnected is not None and await is_disconnected():
                    raise ClientGone()
                await refill()
    finally:
        for f in pending:
            if not f.done():
                f.cancel()
    return stitcher.out


@dataclass
class Result:
    body: bytes
    media_type: str
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    frames: int
    headers: dict[str, str] = field(default_factory=dict)  # what the work has to tell (e.g. faces enhanced)
