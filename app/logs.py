"""Logging: plain text or JSON lines (GAN_LOG_FORMAT), with the request ID of the request being served.

``RequestIdMiddleware`` takes the client's ``X-Request-ID`` (or makes one), returns it on the response and
puts it in a context variable; a logging filter copies it into every record logged while that request is
served, so ``grep <id>`` (or a JSON query on ``request_id``) finds every line of one request.
"""
from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from app.asgi import HttpMiddleware

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
HEADER = "x-request-id"
VALID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")  # what a client may choose; anything else is replaced
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure(level: str = "info", fmt: str = "text") -> None:
    """The root logger's one handler (stderr), in text or JSON, with ``request_id`` on every record."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                                           rename_fields={"levelname": "level", "name": "logger", "asctime": "time"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root handler, with the request ID
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class RequestIdMiddleware(HttpMiddleware):
    """The request's ID in REQUEST_ID while it is served, and in the response's X-Request-ID."""

    async def http(self, scope, receive, send) -> None:
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == HEADER.encode()), "")
        rid = given if VALID.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(rid)

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
