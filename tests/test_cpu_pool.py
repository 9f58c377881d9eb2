"""The bounded pool of request CPU stages: a new request is refused (503) while the backlog is full; stages of
admitted requests always queue."""
from __future__ import annotations

import asyncio
import threading

import pytest

from app.cpu import CpuPool
from app.errors import ApiError


def test_a_full_backlog_refuses_new_requests_but_not_their_later_stages():
    release = threading.Event()

    async def main():
        pool = CpuPool(workers=1, max_waiting=2, retry_after_s=3)
        busy = [asyncio.ensure_future(pool.run(release.wait, 10)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as refused:
            await pool.run(sum, [1, 2], admit=True)  # a new request's first stage: refused at once
        later = asyncio.ensure_future(pool.run(sum, [1, 2]))  # an admitted request's next stage: queued
        release.set()
        await asyncio.gather(*busy)
        return refused.value, await later, pool.pending

    err, later, pending = asyncio.run(asyncio.wait_for(main(), 20))
    assert err.status == 503 and err.headers["Retry-After"] == "3" and later == 3 and pending == 0
