"""Async jobs: POST /v1/jobs (an /upscale or /degrade request, answered 202 at once), GET its status and
progress, GET its result, DELETE to cancel. The store and its bounds are in app/jobs.py."""
from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from app import cpu, errors, imaging, upload
from app.engine import PROGRESS, admitted
from app.jobs import Job
from app.routes.degrade import DEGRADE
from app.routes.deps import BudgetDep, JobsDep, RegistryDep, SettingsDep
from app.routes.image_request import ImageTask, answer_headers, parse_options, query_options
from app.routes.openapi import COMMON_HEADERS, IMAGE_ERRORS, IMAGE_TYPES, ErrorDetail, image_operation
from app.routes.openapi import errors as errors_doc
from app.routes.upscale import UPSCALE, UpscaleOptions

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
TASKS: dict[str, ImageTask] = {t.name: t for t in (UPSCALE, DEGRADE)}
JOB_ID = Path(description="the id POST /v1/jobs answered", examples=["3f9c2a7b1d4e5f6a7b8c9d0e"])


class JobError(ErrorDetail):
    status: int = Field(description="the HTTP status the synchronous route would have answered")


class Progress(BaseModel):
    tiles_done: int
    tiles_total: int = Field(description="0 for work done in one piece (a degradation)")
    fraction: float = Field(description="0..1; 1 when the job is done")


class JobView(BaseModel):
    """A job as GET /v1/jobs/{id} answers it."""

    id: str
    task: Literal["upscale", "degrade"]
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    created: float
    started: float | None
    finished: float | None
    progress: Progress
    eta_s: float | None = Field(description="seconds left at the speed so far (while running)")
    error: JobError | None = Field(description="a failed job's error")
    result: dict | None = Field(None, description="when done: url, media_type, bytes")


def _submit_docs() -> dict:
    doc = image_operation(UpscaleOptions, "", {}, {"task": "upscale", "scale": 4}, extra_params={"task": {
        "type": "string", "enum": list(TASKS), "default": "upscale",
        "description": "which route's work: upscale (the options of /upscale, shown here) or degrade (those of /degrade)"}})
    doc["responses"] = {"202": {"description": "the job, with Location: /v1/jobs/{id}", "headers": {
        "Location": {"description": "the job's URL", "schema": {"type": "string"}},
        "X-Request-ID": {"description": COMMON_HEADERS["X-Request-ID"], "schema": {"type": "string"}}}}}
    return doc


@router.post(
    "", status_code=202, summary="Submit an /upscale or /degrade request as a job (for images too large to wait for)",
    response_model=JobView, responses=IMAGE_ERRORS, openapi_extra=_submit_docs(),
)
async def submit(request: Request, settings: SettingsDep, registry: RegistryDep, store: JobsDep, budget: BudgetDep) -> JSONResponse:
    task = request.query_params.get("task", "upscale")
    if task not in TASKS:
        raise errors.unprocessable(f"task: use one of {', '.join(TASKS)}")
    spec = TASKS[task]
    try:
        with budget.hold(upload.expected_size(request, settings.max_body_bytes)):
            data, form = await upload.read_with_deadline(request, settings.max_body_bytes, settings.body_timeout_s)
    except errors.ApiError as e:
        if e.status != 408:
            await upload.discard_body(request, settings.max_body_bytes)
        raise
    opts = parse_options(spec.options, query_options(request, spec), form)
    models = spec.models(registry, opts)  # an unknown model or a bad combination: 404/422 now, not in the job
    # no image, not an image, or over the pixel limits: 400/413/415 now, from the header alone
    await cpu.run(imaging.open_checked, data, settings.max_input_pixels, settings.max_input_side)

    async def work(job: Job) -> tuple[bytes, str, dict[str, str]]:
        PROGRESS.set(job.progress)
        while True:  # a full model or memory budget: wait for room (the job stays queued meanwhile)
            try:
                with budget.hold(2 * len(data)):
                    async with admitted(models, settings, deadline=False):
                        result = await spec.work(settings, registry, opts, models[0], data, None)
                break
            except errors.ApiError as e:
                if e.status != 503:
                    raise
                await asyncio.sleep(max(1, settings.retry_after_s))
        return result.body, result.media_type, answer_headers(spec, opts, models[0], result)

    job = store.submit(task, len(data), work)
    return JSONResponse(job.describe(), 202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/{job_id}", summary="A job's status, progress (tiles done / total) and ETA", response_model=JobView,
            responses=errors_doc(401, 404, 422))
async def status(store: JobsDep, job_id: str = JOB_ID) -> dict:
    return store.get(job_id).describe()


@router.get("/{job_id}/result", summary="The finished job's image (409 until it is done; a failed job's own error)",
            responses={200: {"description": "the image, with the headers of the route's answer",
                             "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES}},
                       **errors_doc(400, 401, 404, 409, 413, 415, 422)})
async def result(store: JobsDep, job_id: str = JOB_ID) -> Response:
    job = store.get(job_id)
    body = await asyncio.to_thread(store.result, job)
    took = {"X-Processing-Time-Ms": f"{(job.finished - job.started) * 1000:.1f}"} if job.finished and job.started else {}
    return Response(body, media_type=job.media_type, headers={**job.headers, **took})


@router.delete("/{job_id}", summary="Cancel a job (its queued tiles are dropped) and delete it with its result",
               responses=errors_doc(401, 404, 422))
async def cancel(store: JobsDep, job_id: str = JOB_ID) -> dict:
    job = store.get(job_id)
    await store.cancel(job)
    return {**job.describe(), "deleted": True}
