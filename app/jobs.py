"""Async jobs: an image request that runs after its answer (202), for work longer than a request's deadline.

The store is bounded: at most GAN_JOBS_MAX jobs and GAN_JOBS_MAX_BYTES of inputs and results in memory;
results over GAN_JOBS_SPILL_BYTES go to files in GAN_JOBS_DIR, at most GAN_JOBS_DISK_BYTES in all. A full
store answers 503 with Retry-After. Jobs are forgotten GAN_JOBS_TTL_S after they end (and their files
deleted). A job does not depend on its client's connection: it runs to its end unless it is cancelled.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from app import errors

log = logging.getLogger("app.jobs")
ENDED = ("done", "failed", "cancelled")


@dataclass
class Job:
    id: str
    task: str
    input_bytes: int
    created: float = field(default_factory=time.time)
    status: str = "queued"  # queued -> running -> done | failed | cancelled
    started: float | None = None
    finished: float | None = None
    tiles_done: int = 0
    tiles_total: int = 0
    error: dict | None = None  # {"status", "code", "message"} of a failed job
    media_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    result: bytes | None = None  # in memory, or
    result_path: Path | None = None  # spilled to disk
    result_bytes: int = 0
    runner: asyncio.Task | None = None

    def progress(self, done: int, total: int) -> None:
        self.tiles_done, self.tiles_total = done, total

    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None until a tile is done)."""
        if self.status != "running" or not self.tiles_done or self.started is None:
            return None
        elapsed = time.time() - self.started
        return round(elapsed / self.tiles_done * (self.tiles_total - self.tiles_done), 1)

    def fraction(self) -> float:
        if self.status == "done":
            return 1.0  # also for work that reports no tiles (a degradation)
        return round(self.tiles_done / self.tiles_total, 4) if self.tiles_total else 0.0

    def describe(self) -> dict:
        body = {
            "id": self.id, "task": self.task, "status": self.status, "created": self.created, "started": self.started,
            "finished": self.finished,
            "progress": {"tiles_done": self.tiles_done, "tiles_total": self.tiles_total, "fraction": self.fraction()},
            "eta_s": self.eta_s(), "error": self.error,
        }
        if self.status == "done":
            body["result"] = {"url": f"/v1/jobs/{self.id}/result", "media_type": self.media_type, "bytes": self.result_bytes}
        return body


class JobStore:
    def __init__(self, max_jobs: int, max_bytes: int, spill_bytes: int, disk_bytes: int, ttl_s: float,
                 directory: Path | None, retry_after_s: int, concurrency: int = 1) -> None:
        self.max_jobs, self.max_bytes, self.spill_bytes, self.disk_bytes = max_jobs, max_bytes, spill_bytes, disk_bytes
        self.ttl_s, self.retry_after_s = ttl_s, retry_after_s
        self._configured = None if directory is None else Path(directory)
        self._dir: Path | None = None  # made on the first spill: a read-only container without one still serves
        self.jobs: dict[str, Job] = {}
        self.gate = asyncio.Semaphore(concurrency)  # jobs computing at once; the others wait (status queued)

    @property
    def memory_used(self) -> int:
        return sum((j.input_bytes if j.status in ("queued", "running") else 0) + (len(j.result) if j.result else 0)
                   for j in self.jobs.values())

    @property
    def disk_used(self) -> int:
        return sum(j.result_bytes for j in self.jobs.values() if j.result_path is not None)

    def expire(self) -> None:
        now = time.time()
        for job in [j for j in self.jobs.values() if j.finished is not None and now - j.finished > self.ttl_s]:
            self._forget(job)

    def submit(self, task: str, input_bytes: int, work: Callable[[Job], Awaitable[tuple[bytes, str, dict[str, str]]]]) -> Job:
        """A new job running ``work`` in the background; 503 when the store is full."""
        self.expire()
        if len(self.jobs) >= self.max_jobs:
            raise errors.unavailable(self.retry_after_s, f"the job store holds {len(self.jobs)} jobs (GAN_JOBS_MAX); retry later")
        if self.memory_used + input_bytes > self.max_bytes:
            raise errors.unavailable(self.retry_after_s, "the job store's memory is full (GAN_JOBS_MAX_BYTES); retry later")
        job = Job(secrets.token_hex(12), task, input_bytes)
        self.jobs[job.id] = job
        job.runner = asyncio.create_task(self._run(job, work), name=f"job-{job.id}")
        return job

    async def _run(self, job: Job, work: Callable[[Job], Awaitable[tuple[bytes, str, dict[str, str]]]]) -> None:
        try:
            async with self.gate:
                job.status, job.started = "running", time.time()
                body, media_type, headers = await work(job)
                self._keep(job, body)
                job.media_type, job.headers, job.status = media_type, headers, "done"
        except asyncio.CancelledError:
            job.status = "cancelled"
        except errors.ApiError as e:
            job.status, job.error = "failed", {"status": e.status, "code": e.code, "message": e.message}
        except Exception as e:  # noqa: BLE001 - a job's failure is reported in the job, never lost
            log.exception("job %s failed", job.id)
            job.status, job.error = "failed", {"status": 500, "code": "internal", "message": f"{type(e).__name__}: {e}"}
        finally:
            job.finished = time.time()

    def _spill_dir(self) -> Path | None:
        if self._dir is None:
            try:
                if self._configured is None:
                    self._dir = Path(tempfile.mkdtemp(prefix="gan-jobs-"))
                else:
                    self._configured.mkdir(parents=True, exist_ok=True)
                    self._dir = self._configured
            except OSError as e:
                log.warning("job results cannot spill to disk (%s): they stay in memory", e)
        return self._dir

    def _keep(self, job: Job, body: bytes) -> None:
        job.result_bytes = len(body)
        folder = self._spill_dir() if len(body) > self.spill_bytes and self.disk_used + len(body) <= self.disk_bytes else None
        if folder is not None:
            path = folder / f"{job.id}.out"
            path.write_bytes(body)
            job.result_path = path
        elif self.memory_used + len(body) - job.input_bytes <= self.max_bytes:
            job.result = body
        else:
            raise errors.ApiError(507, "insufficient_storage", f"no room for a {len(body)}-byte result (GAN_JOBS_MAX_BYTES, "
                                                               "GAN_JOBS_DISK_BYTES); retry it later")

    def get(self, job_id: str) -> Job:
        self.expire()
        job = self.jobs.get(job_id)
        if job is None:
            raise errors.not_found(f"no job '{job_id}' (unknown, or expired GAN_JOBS_TTL_S after it ended)")
        return job

    def result(self, job: Job) -> bytes:
        """The result; a failed job answers its own error (as the route would have), an unfinished one 409."""
        if job.status == "failed" and job.error is not None:
            raise errors.ApiError(job.error["status"], job.error["code"], f"job {job.id} failed: {job.error['message']}")
        if job.status == "cancelled":
            raise errors.ApiError(409, "cancelled", f"job {job.id} was cancelled; it has no result")
        if job.status != "done":
            raise errors.ApiError(409, "not_ready", f"job {job.id} is {job.status}", {"Retry-After": str(self.retry_after_s)})
        return job.result if job.result is not None else job.result_path.read_bytes()  # type: ignore[union-attr]

    async def cancel(self, job: Job) -> None:
        """Stop a job (its tiles still queued are dropped) and forget it."""
        if job.runner is not None and not job.runner.done():
            job.runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.runner
        self._forget(job)

    def _forget(self, job: Job) -> None:
        self.jobs.pop(job.id, None)
        if job.result_path is not None:
            job.result_path.unlink(missing_ok=True)

    async def close(self) -> None:
        for job in list(self.jobs.values()):
            await self.cancel(job)
        if self._dir is not None and self._configured is None:
            shutil.rmtree(self._dir, ignore_errors=True)
