"""Dynamic batching: tiles from every in-flight request of a model go through one queue.

A worker takes the oldest waiting tile, then keeps collecting tiles of the same shape until it has
``max_batch`` or ``max_wait_ms`` has passed since that oldest tile arrived, runs one session call in a
worker thread (the event loop never blocks on inference) and hands each output tile back to its future.
Tiles whose request has gone (client disconnected, deadline passed) are cancelled and skipped.

Admission is per request: ``admit()`` fails at once when ``max_queue`` requests are already in flight,
so an overloaded server answers 503 immediately instead of queueing work it cannot finish in time.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app import metrics

log = logging.getLogger("app.batching")


class QueueFull(Exception):
    pass


@dataclass
class _Item:
    tile: np.ndarray
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(
        self, name: str, run: Callable[[np.ndarray], np.ndarray], max_batch: int, max_wait_ms: float, max_queue: int
    ) -> None:
        self.name, self.run = name, run
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.in_flight = 0  # admitted requests not yet finished
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._pending: _Item | None = None  # an item taken from the queue that did not fit the last batch
        self._task: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._worker(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- requests ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def admit(self):
        """Hold one of ``max_queue`` request slots for the duration of a request, or raise QueueFull."""
        if self.in_flight >= self.max_queue:
            raise QueueFull(self.name)
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def submit(self, tiles: list[np.ndarray]) -> list[asyncio.Future]:
        loop = asyncio.get_running_loop()
        futures = []
        for t in tiles:
            fut = loop.create_future()
            self._queue.put_nowait(_Item(t, fut))
            futures.append(fut)
        metrics.QUEUE_DEPTH.labels(self.name).set(self.depth)
        return futures

    @property
    def depth(self) -> int:
        return self._queue.qsize() + (self._pending is not None)

    # -- worker --------------------------------------------------------------------------------------------
    async def _next(self, timeout: float | None) -> _Item | None:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        if timeout is None:
            return await self._queue.get()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _collect(self) -> list[_Item]:
        batch: list[_Item] = []
        while not batch:
            first = await self._next(None)
            if not first.future.done():
                batch.append(first)
        deadline = batch[0].enqueued + self.max_wait
        shape = batch[0].tile.shape
        while len(batch) < self.max_batch:
            # Take what is already waiting without sleeping; only wait while the oldest tile is young.
            if not self._queue.empty():
                item = self._queue.get_nowait()
            else:
                remaining = deadline - time.monotonic()
                item = await self._next(remaining) if remaining > 0 else None
            if item is None:
                break
            if item.future.done():
                continue
            if item.tile.shape != shape:
                self._pending = item
                break
            batch.append(item)
        return batch

    async def _worker(self) -> None:
        while True:
            batch = await self._collect()
            metrics.QUEUE_DEPTH.labels(self.name).set(self.depth)
            x = np.stack([it.tile for it in batch])
            t0 = time.perf_counter()
            try:
                y = await asyncio.to_thread(self.run, x)
            except Exception as e:  # a failed session call fails its tiles' requests, never the worker
                log.exception("model %s failed on a batch of %d", self.name, len(batch))
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            metrics.MODEL_SECONDS.labels(self.name).observe(time.perf_counter() - t0)
            metrics.BATCH_SIZE.labels(self.name).observe(len(batch))
            for it, out in zip(batch, y):
                if not it.future.done():
                    it.future.set_result(out)
