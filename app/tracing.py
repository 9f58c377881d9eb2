"""OpenTelemetry tracing, when an OTLP endpoint is configured (GAN_OTEL_ENDPOINT) and the ``tracing`` extra is
installed (``pip install 'gan-image-service[tracing]'``): a span per request (the FastAPI instrumentation, with
the route template, status and the X-Request-ID as an attribute), exported over OTLP/HTTP in batches."""
from __future__ import annotations

import logging

from fastapi import FastAPI

log = logging.getLogger("app.tracing")


def setup(app: FastAPI, endpoint: str, service_name: str, exporter=None) -> None:
    """Instrument ``app``; ``exporter`` replaces the OTLP exporter (tests pass an in-memory one)."""
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as e:
        raise RuntimeError(f"GAN_OTEL_ENDPOINT is set but the tracing extra is not installed ({e}): "
                           "pip install 'gan-image-service[tracing]'") from None
    from app.asgi import HttpMiddleware
    from app.logs import REQUEST_ID

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))

    from opentelemetry import trace

    class TagRequestId(HttpMiddleware):
        """Inside the request's span (the instrumentation's middleware is outermost) and inside app.logs'
        RequestIdMiddleware (added after this one, so outer to it): the span gets the request's ID."""

        async def http(self, scope, receive, send) -> None:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute("http.request_id", REQUEST_ID.get())
            await self.app(scope, receive, send)

    app.add_middleware(TagRequestId)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics")
    log.info("tracing to %s as %s", endpoint, service_name)
