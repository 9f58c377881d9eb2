"""The base of the service's pure ASGI middlewares (no body buffering): HTTP requests go to ``http``, the rest
(lifespan, websockets) pass straight through."""
from __future__ import annotations


class HttpMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope, receive, send) -> None:
        raise NotImplementedError
