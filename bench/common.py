"""Shared by the benchmarks: machine matmul rate, timing, table printing."""
from __future__ import annotations

import platform
import time

import numpy as np


def sgemm_gflops(n: int = 2048, repeat: int = 5) -> float:
    """This machine's measured float32 matmul rate (numpy/BLAS, all cores), best of `repeat`."""
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_time(fn, warmup: int = 2, repeat: int = 10) -> float:
    for _ in range(warmup):
        fn()
    return float(np.median([_timed(fn) for _ in range(repeat)]))


def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    cells = [[fmt(v) for v in r] for r in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
