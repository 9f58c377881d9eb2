"""The global memory budget: bytes held by the requests in flight, across every route and model.

A request reserves its body's size before the body is read (Content-Length, or GAN_MAX_BODY_BYTES when it is
not declared), then, once the image's header is known, what it will hold at most (``need``: decoded input,
output, encoded answer). Past GAN_MAX_INFLIGHT_BYTES the request gets 503 with Retry-After at once, so the
process never takes more memory than the budget allows, whatever many clients send together. A request alone
is always admitted up to the budget; beyond it, it could never run.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from app import errors, metrics


class Budget:
    def __init__(self, limit: int, retry_after_s: int = 1) -> None:
        self.limit, self.retry_after_s, self.used = limit, retry_after_s, 0
        metrics.INFLIGHT_BYTES.set_function(lambda: self.used)

    def _take(self, n: int, held: int) -> None:
        if n > self.limit:
            raise errors.too_large(f"the request needs about {n >> 20} MiB; this server takes at most "
                                   f"{self.limit >> 20} MiB per request (GAN_MAX_INFLIGHT_BYTES)")
        if self.used - held + n > self.limit:
            metrics.BUDGET_REFUSED.inc()
            raise errors.overloaded(self.retry_after_s, "the server holds as many images as its memory budget allows; retry later")
        self.used += n - held

    @contextlib.contextmanager
    def hold(self, n: int) -> Iterator[Reservation]:
        self._take(n, 0)
        r = Reservation(self, n)
        token = _current.set(r)
        try:
            yield r
        finally:
            _current.reset(token)
            self.used -= r.bytes


class Reservation:
    def __init__(self, budget: Budget, n: int) -> None:
        self.budget, self.bytes = budget, n

    def grow_to(self, n: int) -> None:
        if n > self.bytes:
            self.budget._take(n, self.bytes)
            self.bytes = n


_current: contextvars.ContextVar[Reservation | None] = contextvars.ContextVar("budget", default=None)


def need(n: int) -> None:
    """The request being served will hold ``n`` bytes at most: grow its reservation (503 if over the budget)."""
    r = _current.get()
    if r is not None:
        r.grow_to(n)


def image_bytes(width: int, height: int, scale: float, sample_bytes: int, body: int) -> int:
    """What one image request holds at most besides its tiles: body (and its multipart copy: pass it doubled),
    decoded input (RGB + alpha), output (RGB + alpha) and its encoding (at most about the raw output size)."""
    inp = width * height * (3 * sample_bytes + 1)
    out = int(width * scale) * int(height * scale) * (3 * sample_bytes + 1)
    return body + inp + 2 * out


AHEAD_BYTES = 128 * 2**20  # tiles a request queues ahead: two batches, but no more than this (and at least two tiles)


def one_tile(tile_h: int, tile_w: int, scale: int) -> int:
    """Bytes of one tile in flight: its float32 input and output."""
    return 3 * 4 * (tile_h * tile_w + tile_h * scale * tile_w * scale)


def tiles_ahead(tile_h: int, tile_w: int, scale: int, max_batch: int) -> int:
    """How many tiles a request keeps queued ahead of its stitcher (app/engine.py): enough to fill two
    batches, within AHEAD_BYTES."""
    return max(2, min(2 * max_batch, AHEAD_BYTES // one_tile(tile_h, tile_w, scale)))


def tile_bytes(tile_h: int, tile_w: int, scale: int, max_batch: int, out_width: int, overlap: int) -> int:
    """The tiles a request has queued ahead, as many again for the batch outputs being stitched (a batch's output
    array lives until its last tile is blended), and the stitcher's two blend strips (app/tiling.py): the rest of
    what an upscale holds."""
    strips = 3 * 4 * (overlap + 1) * scale * (out_width + tile_h * scale)
    return 2 * tiles_ahead(tile_h, tile_w, scale, max_batch) * one_tile(tile_h, tile_w, scale) + strips
