"""The CPU stages of requests (decode, tile cutting, stitching, face detection, encode) in one bounded pool.

``run`` queues any stage; ``admit=True`` (a request's first stage, decoding) refuses with 503 when
GAN_CPU_QUEUE stages are already waiting, instead of growing an unbounded backlog behind the deadline. Later
stages of an admitted request are never refused: requests are bounded by admission, so the backlog is too.
A request that ends (deadline, client gone) stops between stages; the stage under way finishes first.
"""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from app import errors, metrics

T = TypeVar("T")


class CpuPool:
    def __init__(self, workers: int, max_waiting: int, retry_after_s: int = 1) -> None:
        self.max_waiting, self.retry_after_s = max_waiting, retry_after_s
        self.pending = 0  # stages queued or running
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="cpu")

    async def run(self, fn: Callable[..., T], *args, admit: bool = False) -> T:
        if admit and self.pending >= self.max_waiting:
            raise errors.overloaded(self.retry_after_s, f"{self.pending} image stages are queued (GAN_CPU_QUEUE); retry later")
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))
        finally:
            self.pending -= 1


_pool = CpuPool(4, 64)


def configure(workers: int, max_waiting: int, retry_after_s: int) -> None:
    global _pool
    _pool = CpuPool(workers, max_waiting, retry_after_s)


async def run(fn: Callable[..., T], *args, admit: bool = False) -> T:
    return await _pool.run(fn, *args, admit=admit)


metrics.CPU_STAGES.set_function(lambda: _pool.pending)
