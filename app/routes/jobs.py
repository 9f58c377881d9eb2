"""Async jobs: POST /v1/jobs (an /upscale or /degrade request, answered 202 at once), GET its status and
progress, GET its result, DELETE to cancel. The store and its bounds are in app/jobs.py."""
from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from app import errors, upload
from app.jobs import Job
from app.routes.degrade import DEGRADE
from app.routes.image_request import ImageTask, image_body, parse_options
from app.routes.upscale import UPSCALE
from app.upscaler import PROGRESS, admitted

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
TASKS: dict[str, ImageTask] = {t.name: t for t in (UPSCALE, DEGRADE)}


@router.post(
    "", status_code=202, summary="Submit an /upscale or /degrade request as a job (for images too large to wait for)",
    openapi_extra=image_body("the job (202), with Location: /v1/jobs/{id}", {"task": "string"}),
)
async def submit(
    request: Request,
    task: Literal["upscale", "degrade"] = Query("upscale", description="which route's work; its options follow as for that route"),
) -> JSONResponse:
    app = request.app
    settings, registry, store = app.state.settings, app.state.registry, app.state.jobs
    spec = TASKS[task]
    try:
        with app.state.budget.hold(upload.expected_size(request, settings.max_body_bytes)):
            data, form = await upload.read_with_deadline(request, settings.max_body_bytes, settings.body_timeout_s)
    except errors.ApiError as e:
        if e.status != 408:
            await upload.discard_body(request, settings.max_body_bytes)
        raise
    query = {k: v for k, v in request.query_params.items() if k != "task"}
    opts = parse_options(spec.options, query, {k: v for k, v in form.items() if k != "task"})
    models = spec.models(registry, opts)  # an unknown model or a bad combination: 404/422 now, not in the job

    async def work(job: Job) -> tuple[bytes, str, dict[str, str]]:
        PROGRESS.set(job.progress)
        while True:  # a full model or memory budget: wait for room (the job stays queued meanwhile)
            try:
                with app.state.budget.hold(2 * len(data)):
                    async with admitted(models, settings, deadline=False):
                        result = await spec.work(settings, registry, opts, models[0], data, None)
                break
            except errors.ApiError as e:
                if e.status != 503:
                    raise
                await asyncio.sleep(max(1, settings.retry_after_s))
        headers = {**spec.headers(opts, models[0]), **result.headers, "X-Input-Size": "{}x{}".format(*result.in_size),
                   "X-Output-Size": "{}x{}".format(*result.out_size)}
        return result.body, result.media_type, headers

    job = store.submit(task, len(data), work)
    return JSONResponse(job.describe(), 202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/{job_id}", summary="A job's status, progress (tiles done / total) and ETA")
async def status(request: Request, job_id: str) -> dict:
    return request.app.state.jobs.get(job_id).describe()


@router.get("/{job_id}/result", summary="The finished job's image (409 until it is done)",
            responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/tiff": {}}}})
async def result(request: Request, job_id: str) -> Response:
    store = request.app.state.jobs
    job = store.get(job_id)
    body = await asyncio.to_thread(store.result, job)
    return Response(body, media_type=job.media_type, headers=job.headers)


@router.delete("/{job_id}", summary="Cancel a job (its queued tiles are dropped) and delete it with its result")
async def cancel(request: Request, job_id: str) -> dict:
    store = request.app.state.jobs
    job = store.get(job_id)
    await store.cancel(job)
    return {**job.describe(), "deleted": True}
