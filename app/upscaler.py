"""Upscale one image with one model: decode -> tiles -> batcher -> stitch -> encode.

Tiles are queued a few batches ahead of the stitcher, so a large image keeps the batcher fed, while memory
stays a few tiles plus the output. When the request ends early (deadline, client gone, error), every tile
it still has queued is cancelled and skipped by the batcher.
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

from app import budget, cpu, errors, faces, imaging, metrics
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
