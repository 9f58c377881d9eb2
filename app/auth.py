"""Optional API key (GAN_API_KEY): every route but health, the web page and its assets needs
``Authorization: Bearer <key>``; without the setting, nothing is checked.

A pure ASGI middleware, so a refused request is answered before its body is read.
"""
from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from app import errors

OPEN_PATHS = ("/healthz", "/readyz", "/", "/static/", "/favicon.ico")


def is_open(path: str) -> bool:
    return any(path == p or (p.endswith("/") and p != "/" and path.startswith(p)) for p in OPEN_PATHS)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        auth = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            await self.app(scope, receive, send)
            return
        await errors.response(errors.unauthorized()).__call__(scope, receive, send)
