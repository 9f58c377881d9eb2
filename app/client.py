"""A Python client for the service (httpx), sync and async.

    from app.client import Client
    with Client("http://localhost:8000") as c:
        r = c.upscale("photo.jpg", scale=3)
        r.save("photo-x3.jpg")           # or r.content (bytes), r.image() (PIL), r.headers

Inputs are a path, bytes or a PIL image. A 503 (overloaded, warming up) is retried after the server's
Retry-After, at most ``retries`` times and never waiting longer than ``max_wait_s`` in all; every other error
raises a typed ``ServiceError`` subclass built from the service's JSON error body (code and message).
"""
from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ImageInput = str | Path | bytes | Image.Image


class ServiceError(Exception):
    """An error answer: ``status``, the service's ``code`` and ``message`` (from its JSON body)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


class BadRequest(ServiceError):
    """400: the body is not a readable image or JSON."""


class Unauthorized(ServiceError):
    """401: the server needs an API key (Client(api_key=...))."""


class NotFound(ServiceError):
    """404: no such model or route."""


class RequestTimeout(ServiceError):
    """408: the upload was too slow."""


class TooLarge(ServiceError):
    """413: the image or its output is over the server's limits."""


class UnsupportedMedia(ServiceError):
    """415: not an image format the server reads."""


class InvalidParameters(ServiceError):
    """422: an option is out of range, or names a model that cannot do the work."""


class RateLimited(ServiceError):
    """429: the load balancer's rate limit."""


class Unavailable(ServiceError):
    """503: overloaded or not ready, still so after the retries; ``retry_after`` is the server's last hint."""

    @property
    def retry_after(self) -> float | None:
        return _retry_after(self.headers)


class GatewayTimeout(ServiceError):
    """504: the request passed its deadline on the server."""


ERRORS: dict[int, type[ServiceError]] = {
    400: BadRequest, 401: Unauthorized, 404: NotFound, 408: RequestTimeout, 413: TooLarge, 415: UnsupportedMedia,
    422: InvalidParameters, 429: RateLimited, 503: Unavailable, 504: GatewayTimeout,
}


def error_from(response: httpx.Response) -> ServiceError:
    """The typed exception for an error response; the body's ``{"error": {"code", "message"}}`` when it has one."""
    code, message = "http_error", response.text[:500] or response.reason_phrase
    try:
        err = response.json()["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        pass
    return ERRORS.get(response.status_code, ServiceError)(response.status_code, code, message, response.headers)


@dataclass
class ImageResult:
    content: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, as httpx gives them

    def __repr__(self) -> str:
        return f"ImageResult({self.media_type}, {len(self.content)} bytes, model={self.headers.get('x-model')})"

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.content))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.content)
        return path


def _image_bytes(image: ImageInput) -> bytes:
    if isinstance(image, bytes):
        return image
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, "PNG")  # lossless, keeps alpha and 16-bit grey
        return buf.getvalue()
    return Path(image).read_bytes()


def _params(**options: Any) -> dict[str, str]:
    out = {}
    for k, v in options.items():
        if v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


def _result(r: httpx.Response) -> ImageResult:
    return ImageResult(r.content, r.headers.get("content-type", ""), dict(r.headers))


def _t2i_results(r: httpx.Response) -> list[ImageResult]:
    if not r.headers.get("content-type", "").startswith("application/json"):
        return [_result(r)]
    body = r.json()
    details = body.get("detail_seeds") or [None] * len(body["seeds"])
    return [ImageResult(base64.b64decode(b), body["media_type"],
                        {**dict(r.headers), "x-seed": str(s), **({"x-detail-seed": str(d)} if d is not None else {})})
            for b, s, d in zip(body["images"], body["seeds"], details)]


class _Base:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, retries: int, max_wait_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout, self.retries, self.max_wait_s = timeout, retries, max_wait_s

    @staticmethod
    def _upscale(image: ImageInput, scale: float | None, model: str | None, faces: bool, format: str | None,
                 quality: int | None, mode: str | None = None) -> tuple[str, dict]:
        params = _params(scale=scale, model=model, mode=mode, faces=faces or None, format=format, quality=quality)
        return "/upscale", {"content": _image_bytes(image), "params": params}

    @staticmethod
    def _degrade(image: ImageInput, scale: int | None, method: str | None, seed: int | None, strength: str | None,
                 format: str | None, quality: int | None) -> tuple[str, dict]:
        params = _params(scale=scale, method=method, seed=seed, strength=strength, format=format, quality=quality)
        return "/degrade", {"content": _image_bytes(image), "params": params}

    @staticmethod
    def _t2i(prompt: str, n: int, seed: int | None, size: int | None, format: str | None, model: str | None,
             generator: str | None = None, detail_seed: int | None = None, vary: str | None = None,
             style_image: ImageInput | None = None) -> tuple[str, dict]:
        body = {"prompt": prompt, "n": n, "seed": seed, "size": size, "format": format, "model": model, "generator": generator,
                "detail_seed": detail_seed, "vary": vary,
                "style_image": base64.b64encode(_image_bytes(style_image)).decode("ascii") if style_image is not None else None}
        return "/text-to-image", {"json": {k: v for k, v in body.items() if v is not None}}

    def _wait(self, r: httpx.Response, attempt: int, waited: float) -> float | None:
        """Seconds to sleep before another try, or None when the answer stands (an error is raised)."""
        if r.status_code != 503 or attempt >= self.retries:
            return None
        delay = _retry_after(r.headers)
        delay = min(2.0**attempt, 30.0) if delay is None else delay
        return delay if waited + delay <= self.max_wait_s else None


class Client(_Base):
    """Synchronous client. ``retries``: how many times a 503 is retried (after its Retry-After)."""

    def __init__(self, base_url: str = "http://localhost:8000", api_key: str | None = None, timeout: float = 600.0,
                 retries: int = 5, max_wait_s: float = 120.0, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout, retries, max_wait_s)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        waited, attempt = 0.0, 0
        while True:
            r = self._http.post(path, **kwargs)
            if r.status_code < 400:
                return r
            delay = self._wait(r, attempt, waited)
            if delay is None:
                raise error_from(r)
            time.sleep(delay)
            waited, attempt = waited + delay, attempt + 1

    def upscale(self, image: ImageInput, scale: float | None = None, model: str | None = None, faces: bool = False,
                format: str | None = None, quality: int | None = None, mode: str | None = None) -> ImageResult:
        """``model`` by name, or ``mode`` "faithful" / "crisp" for real photos (the restoration models), or neither
        (the default upscaler for the scale)."""
        path, req = self._upscale(image, scale, model, faces, format, quality, mode)
        return _result(self._post(path, **req))

    def degrade(self, image: ImageInput, scale: int | None = None, method: str | None = None, seed: int | None = None,
                strength: str | None = None, format: str | None = None, quality: int | None = None) -> ImageResult:
        path, req = self._degrade(image, scale, method, seed, strength, format, quality)
        return _result(self._post(path, **req))

    def text_to_image(self, prompt: str, n: int = 1, seed: int | None = None, size: int | None = None,
                      format: str | None = None, model: str | None = None, generator: str | None = None,
                      detail_seed: int | None = None, vary: str | None = None, style_image: ImageInput | None = None) -> list[ImageResult]:
        """Images of ``prompt``; ``generator`` "lapgan" with ``detail_seed`` / ``vary="detail"`` redraws the detail of
        one composition; ``style_image`` (a path, bytes or a PIL image) gives the pose and background."""
        path, req = self._t2i(prompt, n, seed, size, format, model, generator, detail_seed, vary, style_image)
        return _t2i_results(self._post(path, **req))

    def models(self) -> list[dict]:
        r = self._http.get("/v1/models")
        if r.status_code >= 400:
            raise error_from(r)
        return r.json()["models"]


class AsyncClient(_Base):
    """The same calls as Client, awaitable (one connection pool for many concurrent requests)."""

    def __init__(self, base_url: str = "http://localhost:8000", api_key: str | None = None, timeout: float = 600.0,
                 retries: int = 5, max_wait_s: float = 120.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout, retries, max_wait_s)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=timeout, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        waited, attempt = 0.0, 0
        while True:
            r = await self._http.post(path, **kwargs)
            if r.status_code < 400:
                return r
            delay = self._wait(r, attempt, waited)
            if delay is None:
                raise error_from(r)
            await asyncio.sleep(delay)
            waited, attempt = waited + delay, attempt + 1

    async def upscale(self, image: ImageInput, scale: float | None = None, model: str | None = None, faces: bool = False,
                      format: str | None = None, quality: int | None = None, mode: str | None = None) -> ImageResult:
        path, req = self._upscale(image, scale, model, faces, format, quality, mode)
        return _result(await self._post(path, **req))

    async def degrade(self, image: ImageInput, scale: int | None = None, method: str | None = None, seed: int | None = None,
                      strength: str | None = None, format: str | None = None, quality: int | None = None) -> ImageResult:
        path, req = self._degrade(image, scale, method, seed, strength, format, quality)
        return _result(await self._post(path, **req))

    async def text_to_image(self, prompt: str, n: int = 1, seed: int | None = None, size: int | None = None,
                            format: str | None = None, model: str | None = None, generator: str | None = None,
                            detail_seed: int | None = None, vary: str | None = None,
                            style_image: ImageInput | None = None) -> list[ImageResult]:
        path, req = self._t2i(prompt, n, seed, size, format, model, generator, detail_seed, vary, style_image)
        return _t2i_results(await self._post(path, **req))

    async def models(self) -> list[dict]:
        r = await self._http.get("/v1/models")
        if r.status_code >= 400:
            raise error_from(r)
        return r.json()["models"]
