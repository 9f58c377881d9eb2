"""The dynamic batcher: batches across requests, wait bound, cancellation, admission, failures."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from app.batching import Batcher, QueueFull


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.sizes: list[int] = []
        self.delay, self.fail = delay, fail

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.sizes.append(len(x))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("boom")
        return x * 2


def tiles(n: int, value: float = 1.0, size: int = 4) -> list[np.ndarray]:
    return [np.full((3, size, size), value + i, np.float32) for i in range(n)]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_tiles_from_many_requests_share_batches_and_come_back_in_place():
    async def main():
        rec = Recorder(delay=0.05)
        b = Batcher("m", rec, max_batch=8, max_wait_ms=50, max_queue=10)
        b.start()
        reqs = [b.submit(tiles(3, value=10 * r)) for r in range(4)]  # 12 tiles from 4 "requests"
        outs = [await asyncio.gather(*f) for f in reqs]
        await b.stop()
        return rec, outs

    rec, outs = run(main())
    for r, out in enumerate(outs):
        for i, o in enumerate(out):
            assert np.all(o == 2 * (10 * r + i))
    assert sum(rec.sizes) == 12 and max(rec.sizes) == 8 and len(rec.sizes) == 2


def test_lone_tile_waits_at_most_max_wait():
    async def main():
        b = Batcher("m", Recorder(), max_batch=64, max_wait_ms=30, max_queue=10)
        b.start()
        t0 = time.perf_counter()
        await asyncio.gather(*b.submit(tiles(1)))
        dt = time.perf_counter() - t0
        await b.stop()
        return dt

    assert run(main()) < 0.5


def test_max_batch_one_disables_batching():
    async def main():
        rec = Recorder()
        b = Batcher("m", rec, max_batch=1, max_wait_ms=50, max_queue=10)
        b.start()
        await asyncio.gather(*b.submit(tiles(5)))
        await b.stop()
        return rec.sizes

    assert run(main()) == [1] * 5


def test_cancelled_tiles_are_skipped():
    async def main():
        rec = Recorder(delay=0.1)
        b = Batcher("m", rec, max_batch=2, max_wait_ms=0, max_queue=10)
        b.start()
        first = b.submit(tiles(2))
        await asyncio.sleep(0.02)  # the worker is now busy with `first`
        gone = b.submit(tiles(6))
        for f in gone:
            f.cancel()
        await asyncio.gather(*first)
        last = b.submit(tiles(1))
        await asyncio.gather(*last)
        await b.stop()
        return rec.sizes

    assert run(main()) == [2, 1]  # the 6 cancelled tiles never reached the model


def test_different_tile_shapes_are_not_mixed():
    async def main():
        rec = Recorder()
        b = Batcher("m", rec, max_batch=8, max_wait_ms=20, max_queue=10)
        futs = b.submit(tiles(2, size=4)) + b.submit(tiles(2, size=8)) + b.submit(tiles(1, size=4))
        b.start()
        outs = await asyncio.gather(*futs)
        await b.stop()
        return rec.sizes, [o.shape[-1] for o in outs]

    sizes, shapes = run(main())
    assert sum(sizes) == 5 and shapes == [4, 4, 8, 8, 4]


def test_admission_is_bounded():
    b = Batcher("m", Recorder(), max_batch=1, max_wait_ms=0, max_queue=2)
    with b.admit(), b.admit():
        with pytest.raises(QueueFull):
            with b.admit():
                pass
    assert b.in_flight == 0
    with b.admit():
        assert b.in_flight == 1


def test_model_failure_fails_the_batch_and_the_worker_goes_on():
    async def main():
        rec = Recorder(fail=True)
        b = Batcher("m", rec, max_batch=4, max_wait_ms=0, max_queue=10)
        b.start()
        with pytest.raises(RuntimeError):
            await asyncio.gather(*b.submit(tiles(2)))
        rec.fail = False
        out = await asyncio.gather(*b.submit(tiles(1)))
        await b.stop()
        return out

    assert np.all(run(main())[0] == 2)


def test_one_bad_tile_fails_only_its_own_request():
    """A batch that fails is run again one tile at a time: the tile that fails alone fails its request, the
    requests batched with it get their results."""

    def model(x: np.ndarray) -> np.ndarray:
        if np.isnan(x).any():
            raise RuntimeError("bad tile")
        return x * 2

    async def main():
        b = Batcher("m", model, max_batch=4, max_wait_ms=50, max_queue=10)
        b.start()
        good, bad = b.submit(tiles(2)), b.submit([np.full((3, 4, 4), np.nan, np.float32)])
        results = await asyncio.gather(asyncio.gather(*good), asyncio.gather(*bad), return_exceptions=True)
        await b.stop()
        return results

    ok, failed = run(main())
    assert [float(t[0, 0, 0]) for t in ok] == [2.0, 4.0] and isinstance(failed, RuntimeError)


def test_multi_input_tiles_are_stacked_per_input_and_grouped_by_all_shapes():
    """Tiles may be tuples (one array per model input): each input is stacked apart, and only tiles whose
    every input has the same shape share a batch."""
    calls = []

    def model(image: np.ndarray, noise: np.ndarray) -> np.ndarray:
        calls.append((image.shape, noise.shape))
        return image + noise[:, :1, None, None]

    async def main():
        b = Batcher("m", model, max_batch=8, max_wait_ms=20, max_queue=10)
        b.start()
        a = b.submit([(np.zeros((3, 4, 4), np.float32), np.full(2, v, np.float32)) for v in (1, 2)])
        c = b.submit([(np.zeros((3, 4, 4), np.float32), np.full(3, 5, np.float32))])  # other noise size
        outs = await asyncio.gather(*a, *c)
        await b.stop()
        return outs

    outs = run(main())
    assert [float(o.mean()) for o in outs] == [1.0, 2.0, 5.0]
    assert sorted(calls) == [((1, 3, 4, 4), (1, 3)), ((2, 3, 4, 4), (2, 2))]
