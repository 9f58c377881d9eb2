"""create_app(): the FastAPI application. Start it with ``python -m app`` (see README for settings)."""
from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool

from app import __version__, cpu, errors, metrics
from app.asgi import HttpMiddleware
from app.auth import ApiKeyMiddleware
from app.budget import Budget
from app.config import Settings, get_settings
from app.jobs import JobStore
from app.logs import RequestIdMiddleware
from app.registry import Registry
from app.routes import degrade, health, jobs, models, page, text_to_image, upscale
from app.routes import metrics as metrics_route
from app.text_to_image import PromptCache

log = logging.getLogger("app")
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class MetricsMiddleware(HttpMiddleware):
    """Counts requests by route template and status, and times them."""

    async def http(self, scope, receive, send) -> None:
        t0, status = time.perf_counter(), 500

        async def send_wrapper(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in METHODS else "OTHER"  # bounded label values
            metrics.REQUESTS.labels(route, method, str(status)).inc()
            metrics.LATENCY.labels(route).observe(time.perf_counter() - t0)


def create_app(settings: Settings | None = None, trace_exporter=None) -> FastAPI:
    """``trace_exporter``: where spans go instead of GAN_OTEL_ENDPOINT's OTLP exporter (tests)."""
    settings = settings or get_settings()
    registry = Registry(settings)
    # Pillow's own bomb guard stays on (process-wide), above our limit so that ours answers first with its 413.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 2 * settings.max_input_pixels)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(registry.load)
        await run_in_threadpool(registry.warmup)
        registry.start()
        app.state.jobs = JobStore(settings.jobs_max, settings.jobs_max_bytes, settings.jobs_spill_bytes, settings.jobs_disk_bytes,
                                  settings.jobs_ttl_s, settings.jobs_dir, settings.retry_after_s, settings.jobs_concurrency)
        registry.ready = True
        log.info("ready: %s", {n: m.provider for n, m in registry.models.items()})
        yield
        app.state.draining = True
        await app.state.jobs.close()
        await registry.stop()

    no_docs: dict[str, Any] = {} if settings.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(
        title="GAN image service",
        version=__version__,
        description="Super-resolution (and more) with GANs trained by this project, served from ONNX Runtime.",
        lifespan=lifespan,
        **no_docs,
    )
    app.state.settings, app.state.registry, app.state.draining = settings, registry, False
    app.state.budget = Budget(settings.max_inflight_bytes, settings.retry_after_s)
    cpu.configure(settings.cpu_workers, settings.cpu_queue, settings.retry_after_s)
    app.state.prompt_cache = PromptCache(settings.t2i_cache_size)  # POST /text-to-image: prompt embeddings (LRU)
    errors.install(app)
    for r in (page.router, health.router, metrics_route.router, models.router, upscale.router, degrade.router,
              text_to_image.router, jobs.router):
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    if settings.api_key.get_secret_value():
        app.add_middleware(ApiKeyMiddleware, key=settings.api_key.get_secret_value())
    if settings.otel_endpoint:
        from app.tracing import setup

        setup(app, settings.otel_endpoint, settings.otel_service_name, trace_exporter)
    app.add_middleware(MetricsMiddleware)  # refused requests are counted too
    app.add_middleware(RequestIdMiddleware)  # outermost: every log line and every answer carries the request ID
    return app
