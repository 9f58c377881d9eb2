"""Reading an image upload: a multipart form (file field ``image``) or the raw body, under a byte limit."""
from __future__ import annotations

import asyncio

from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect, Request

from app import errors

DISCARD_TIMEOUT_S = 5.0


async def read_body(request: Request, max_bytes: int, limit_name: str = "GAN_MAX_BODY_BYTES") -> bytes:
    """The whole body, refusing it (413) as soon as it passes max_bytes, Content-Length or not."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise errors.too_large(f"body is {declared} bytes; the limit is {max_bytes} bytes ({limit_name})")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise errors.too_large(f"body is over the limit of {max_bytes} bytes ({limit_name})")
            chunks.append(chunk)
    except ClientDisconnect:
        raise errors.bad_request("the client closed the connection before the body was complete") from None
    return b"".join(chunks)


async def discard_body(request: Request, max_bytes: int) -> None:
    """Read and drop an unread body (up to max_bytes), so a client that sends the whole body before
    reading the answer (most HTTP clients without Expect: 100-continue) gets an early error response."""
    size = 0
    try:
        async with asyncio.timeout(DISCARD_TIMEOUT_S):  # a slow client is not waited for: the answer goes anyway
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    return
    except Exception:  # already consumed, the client went away, or it is too slow: nothing left to drop
        return


async def read_image(request: Request, max_bytes: int) -> tuple[bytes, dict[str, str]]:
    """(image bytes, form fields). Multipart: the file in field ``image``; anything else: the body itself."""
    body = await read_body(request, max_bytes)
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        return body, {}
    form = await parse_form(request, body)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("image")
    if not isinstance(upload, UploadFile):
        raise errors.bad_request("multipart body has no file field named 'image'")
    return await upload.read(), fields


async def parse_form(request: Request, body: bytes, max_files: int = 4, max_fields: int = 32) -> FormData:
    """A multipart body already read (under its limit) as a form; 400 when it is malformed."""

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=max_files, max_fields=max_fields)
    except Exception as e:  # python-multipart raises several types for malformed bodies
        raise errors.bad_request(f"malformed multipart body: {e}") from None


def expected_size(request: Request, max_bytes: int) -> int:
    """The body's size as declared (Content-Length, capped at max_bytes), else max_bytes: what to reserve for it."""
    declared = request.headers.get("content-length", "")
    return min(int(declared), max_bytes) if declared.isdigit() else max_bytes


async def read_with_deadline(request: Request, max_bytes: int, timeout_s: float) -> tuple[bytes, dict[str, str]]:
    """``read_image`` within ``timeout_s``: a client that sends its body slower gets 408."""
    try:
        async with asyncio.timeout(timeout_s):
            return await read_image(request, max_bytes)
    except TimeoutError:
        raise errors.request_timeout(f"the request body took longer than {timeout_s:g}s to arrive (GAN_BODY_TIMEOUT_S)") from None
