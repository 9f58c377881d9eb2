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
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app import metrics

log = logging.getLogger("app.batching")


class QueueFull(Exception):
    pass


Tile = np.ndarray | tuple[np.ndarray, ...]  # one model input, or one array per input of a multi-input model


def _shape(tile: Tile) -> tuple:
    return tuple(t.shape for t in tile) if isinstance(tile, tuple) else tile.shape


def _stack(tiles: list[Tile]) -> tuple[np.ndarray, ...]:
    if isinstance(tiles[0], tuple):
        return tuple(np.stack(parts) for parts in zip(*tiles))
    return (np.stack(tiles),)


@dataclass
class _Item:
    tile: Tile
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def shape(self) -> tuple:
        return _shape(self.tile)


class Batcher:
    def __init__(
        self, name: str, run: Callable[..., Any], max_batch: int, max_wait_ms: float, max_queue: int, workers: int = 1
    ) -> None:
        self.name, self.run = name, run
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.in_flight = 0  # admitted requests not yet finished
        self.pixels_per_s = 0.0  # measured speed: input pixels per second of model time (moving average), 0 = not yet
        self._items: deque[_Item] = deque()
        self._running: dict[int, list[_Item]] = {}  # worker -> the batch it is computing
        self._wakeup = asyncio.Event()
        self.workers = workers
        self._tasks: list[asyncio.Task] = []
        # Inference threads of their own (``workers`` session calls at a time): never queued behind other work.
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"infer-{name}")
        metrics.QUEUE_DEPTH.labels(name).set_function(lambda: self.depth)
        metrics.IN_FLIGHT.labels(name).set_function(lambda: self.in_flight)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(i), name=f"batcher-{self.name}-{i}") for i in range(self.workers)]

    @property
    def alive(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for it in (*(i for batch in self._running.values() for i in batch), *self._items):
            if not it.future.done():
                it.future.cancel()
        self._items.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- requests ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def admit(self):
        """Hold one of ``max_queue`` request slots for the duration of a request, or raise QueueFull."""
        if self.in_flight >= self.max_queue:
            metrics.MODEL_REJECTED.labels(self.name).inc()
            raise QueueFull(self.name)
        metrics.MODEL_REQUESTS.labels(self.name).inc()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def submit(self, tiles: Sequence[Tile]) -> list[asyncio.Future]:
        """Queue tiles (each an array, or a tuple with one array per model input); a future per tile."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in tiles]
        self._items.extend(_Item(t, f) for t, f in zip(tiles, futures))
        self._wakeup.set()
        return futures

    def observe_request(self, tiles: int) -> None:
        metrics.TILES_PER_REQUEST.labels(self.name).observe(tiles)

    @property
    def depth(self) -> int:
        """Tiles waiting to be computed (cancelled ones do not count: they will never run)."""
        return sum(not it.future.done() for it in self._items)

    def _measure(self, batch: np.ndarray, seconds: float) -> None:
        if batch.ndim == 4:  # image tiles (N, C, H, W)
            self.record_speed(batch.shape[0] * batch.shape[2] * batch.shape[3], seconds)

    def record_speed(self, pixels: int, seconds: float) -> None:
        """One model call's input pixels and time, into the measured speed (the warm-up gives the first)."""
        if seconds > 0:
            rate = pixels / seconds * self.workers
            self.pixels_per_s = rate if not self.pixels_per_s else 0.8 * self.pixels_per_s + 0.2 * rate

    # -- worker --------------------------------------------------------------------------------------------
    def _purge(self) -> None:
        while self._items and self._items[0].future.done():
            self._items.popleft()

    async def _wait(self, timeout: float | None) -> bool:
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def _collect(self) -> list[_Item]:
        """The next batch: up to max_batch live tiles shaped like the oldest, once full or max_wait passed."""
        while True:
            self._purge()
            if not self._items:
                await self._wait(None)
                continue
            oldest = self._items[0]
            live = sum(1 for it in self._items if not it.future.done() and it.shape == oldest.shape)
            remaining = oldest.enqueued + self.max_wait - time.monotonic()
            if live >= self.max_batch or remaining <= 0 or not await self._wait(remaining):
                break
        batch: list[_Item] = []
        rest: deque[_Item] = deque()
        for it in self._items:
            if it.future.done():
                continue
            if len(batch) < self.max_batch and it.shape == oldest.shape:
                batch.append(it)
            else:
                rest.append(it)
        self._items = rest
        return batch

    async def _one_by_one(self, batch: list[_Item]) -> None:
        """Run each tile of a failed batch alone: one bad input fails its own request, not its batch-mates'."""
        loop = asyncio.get_running_loop()
        for it in batch:
            if it.future.done():
                continue
            try:
                y = await loop.run_in_executor(self._executor, self.run, *_stack([it.tile]))
                if not it.future.done():
                    it.future.set_result(y[0])
            except Exception as e:
                if len(batch) > 1:
                    log.error("model %s failed on a tile alone: %s", self.name, e)
                if not it.future.done():
                    it.future.set_exception(e)

    async def _worker(self, index: int = 0) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._running[index] = await self._collect()
            if not batch:  # every candidate was cancelled while we waited
                continue
            try:
                x = _stack([it.tile for it in batch])
                started = time.monotonic()
                for it in batch:
                    metrics.QUEUE_WAIT.labels(self.name).observe(started - it.enqueued)
                t0 = time.perf_counter()
                y = await loop.run_in_executor(self._executor, self.run, *x)
                seconds = time.perf_counter() - t0
                metrics.MODEL_SECONDS.labels(self.name).observe(seconds)
                self._measure(x[0], seconds)
                metrics.BATCH_SIZE.labels(self.name).observe(len(batch))
                for it, out in zip(batch, y):
                    if not it.future.done():
                        it.future.set_result(out)
            except asyncio.CancelledError:  # stopping: nobody will compute this batch
                for it in batch:
                    if not it.future.done():
                        it.future.cancel()
                raise
            except Exception:  # a failed batch fails only the tiles that fail alone, never the worker
                log.exception("model %s failed on a batch of %d tiles; running them one by one", self.name, len(batch))
                await self._one_by_one(batch)
            finally:
                self._running[index] = []
