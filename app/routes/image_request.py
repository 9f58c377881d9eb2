"""What every image-in, image-out route does around its own work: the memory budget (503), the body read
under its size limit (413) and its own deadline (408), options from the query string or the multipart form,
admission to the model's queue (503), the request deadline (504), errors that leave the client able to read
them, and the 499 when the client goes away."""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app import errors, imaging, upload
from app.budget import Budget
from app.config import Settings
from app.engine import ClientGone, Result, admitted
from app.model import Model
from app.registry import Registry

log = logging.getLogger("app")
Options = TypeVar("Options", bound=BaseModel)


Disconnected = Callable[[], Awaitable[bool]] | None


@dataclass(frozen=True)
class ImageTask(Generic[Options]):
    """One image-in, image-out task (upscale, degrade): its options and what it does with them. The synchronous
    route (``handle``) and the jobs route (app/routes/jobs.py) both run a task through this."""

    name: str
    options: type[Options]
    pick: Callable[[Registry, Options], Model]  # the model the options ask for
    work: Callable[[Settings, Registry, Options, Model, bytes, Disconnected], Awaitable[Result]]
    headers: Callable[[Options, Model], dict[str, str]]
    also: Callable[[Registry, Options], list[Model]] = field(default=lambda r, o: [])  # other models it uses (a slot each)

    def models(self, registry: Registry, opts: Any) -> list[Model]:
        return [self.pick(registry, opts), *self.also(registry, opts)]


def parse_options(cls: type[Options], query: Mapping[str, str | None], form: Mapping[str, str]) -> Options:
    """Options from form fields and the query string (the query wins), validated into ``cls`` (422)."""
    raw = {**{k: v for k, v in form.items() if k in cls.model_fields}, **{k: v for k, v in query.items() if v is not None}}
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise errors.unprocessable(msg) from None


def query_options(request: Request, task: ImageTask) -> dict[str, str]:
    """The task's options in the query string (other parameters are ignored)."""
    return {k: v for k, v in request.query_params.items() if k in task.options.model_fields}


def answer_headers(task: ImageTask, opts: Any, model: Model, result: Result) -> dict[str, str]:
    """What an image answer says about its work: the task's headers, the work's own, sizes and frames used."""
    out = {**task.headers(opts, model), **result.headers, "X-Input-Size": "{}x{}".format(*result.in_size),
           "X-Output-Size": "{}x{}".format(*result.out_size)}
    if result.frames > 1:
        counted = result.frames <= imaging.MAX_FRAMES_COUNTED
        out["X-Frames-Used"] = f"1 of {result.frames}" if counted else f"1 of more than {imaging.MAX_FRAMES_COUNTED}"
    return out


async def handle(request: Request, task: ImageTask, settings: Settings, registry: Registry, budget: Budget) -> Response:
    t0 = time.perf_counter()
    query = query_options(request, task)
    try:
        # The memory budget is taken before a byte of the body is read; the body is read under its own deadline,
        # before the request takes a model's slot, so a slow upload holds no slot.
        with budget.hold(upload.expected_size(request, settings.max_body_bytes)):
            data, form = await upload.read_with_deadline(request, settings.max_body_bytes, settings.body_timeout_s)
            opts = parse_options(task.options, query, form)
            model, *others = task.models(registry, opts)
            async with admitted([model, *others], settings):  # 503 at once when a model is saturated
                result = await task.work(settings, registry, opts, model, data, request.is_disconnected)
    except errors.ApiError as e:
        if e.status != 408:
            await upload.discard_body(request, settings.max_body_bytes)  # lets the client read the error
        raise
    except ClientGone:
        log.info("client went away during /%s; its remaining tiles were dropped", task.name)
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it, metrics do
    out = {**answer_headers(task, opts, model, result), "X-Processing-Time-Ms": f"{(time.perf_counter() - t0) * 1000:.1f}"}
    return Response(result.body, media_type=result.media_type, headers=out)
