"""The one error type of the API and the handlers that render every failure as JSON.

Body: ``{"error": {"code": "...", "message": "..."}}``; 429/503 carry ``Retry-After``.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("app")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "this server needs an API key: send 'Authorization: Bearer <key>' (GAN_API_KEY)",
                    {"WWW-Authenticate": "Bearer"})


def request_timeout(message: str) -> ApiError:
    return ApiError(408, "request_timeout", message, {"Connection": "close"})


def too_large(message: str) -> ApiError:
    return ApiError(413, "too_large", message)


def too_slow(message: str) -> ApiError:
    """Too much work for a synchronous request: the async jobs route takes it."""
    return ApiError(413, "use_jobs", message)


def unsupported_media(message: str) -> ApiError:
    return ApiError(415, "unsupported_media_type", message)


def unprocessable(message: str) -> ApiError:
    return ApiError(422, "invalid_parameters", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def overloaded(retry_after_s: int, message: str = "the server is at capacity; retry later") -> ApiError:
    return ApiError(503, "overloaded", message, {"Retry-After": str(retry_after_s)})


def unavailable(retry_after_s: int, message: str) -> ApiError:
    return ApiError(503, "unavailable", message, {"Retry-After": str(retry_after_s)})


def timeout(message: str) -> ApiError:
    return ApiError(504, "timeout", message)


def _body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def response(exc: ApiError) -> JSONResponse:
    return JSONResponse(_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
        return JSONResponse(_body("invalid_parameters", "; ".join(parts)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(_body("internal", "internal server error"), status_code=500)
