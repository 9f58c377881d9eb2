"""The upscale pipeline in-process: exact output, and memory bounded by tile rows, not the image."""
from __future__ import annotations

import asyncio
import tracemalloc

import numpy as np

from app import imaging, upscaler
from app.batching import Batcher
from app.model import Model
from tests.helpers import photo


def nearest(x: np.ndarray) -> np.ndarray:
    return x.repeat(2, 2).repeat(2, 3)


def run(image: imaging.Decoded, tile: int = 96, overlap: int = 16) -> np.ndarray:
    async def main():
        b = Batcher("n", nearest, 8, 1, 10)
        b.start()
        try:
            return await upscaler.upscale(Model("n", {"scale": 2, "task": "super-resolution"}, None, b), image, tile, overlap)
        finally:
            await b.stop()

    return asyncio.run(main())


def test_exact_and_memory_bounded():
    img = np.tile(photo(200, 100), (15, 10, 1))  # 2000 x 1500
    decoded = imaging.Decoded(img, None, False, "PNG")
    tracemalloc.start()
    try:
        out = run(decoded)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(out, img.repeat(2, 0).repeat(2, 1))
    out_mb = out.nbytes / 2**20
    # Output (34 MiB) + two strips + 16 tiles queued ahead: far below the 280 MiB that holding every tile
    # output would take, and below the 60 MiB that two full-width bands of tile rows took before.
    assert peak / 2**20 < out_mb + 30, f"peak {peak / 2**20:.0f} MiB for a {out_mb:.0f} MiB output"
