from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from app import errors, imaging, upload, upscaler

router = APIRouter(tags=["upscale"])
log = logging.getLogger("app")


class UpscaleOptions(BaseModel):
    scale: int | None = Field(None, description="2 or 4; picks the default model for that scale (default 4)")
    model: str | None = Field(None, description="explicit model name from /v1/models, e.g. sr-x4")
    format: str | None = Field(None, pattern="^(png|jpeg|webp)$", description="output format; default: the input's family")
    quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: int | None) -> int | None:
        if v is not None and v not in (2, 4):
            raise ValueError("scale must be 2 or 4")
        return v


IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object", "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}, "scale": {"type": "integer"},
                                   "model": {"type": "string"}, "format": {"type": "string"}, "quality": {"type": "integer"}},
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "responses": {200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}, "description": "the upscaled image"}},
}


def parse_options(query: dict[str, str | None], form: dict[str, str]) -> UpscaleOptions:
    raw = {**{k: v for k, v in form.items() if k in UpscaleOptions.model_fields}, **{k: v for k, v in query.items() if v is not None}}
    try:
        return UpscaleOptions.model_validate(raw)
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise errors.unprocessable(msg) from None


@router.post("/upscale", summary="Upscale an image x2 or x4", openapi_extra=IMAGE_BODY)
async def upscale(
    request: Request,
    scale: str | None = Query(None, description="2 or 4"),
    model: str | None = Query(None, description="model name, e.g. sr-x4"),
    format: str | None = Query(None, description="png, jpeg or webp"),
    quality: str | None = Query(None, description="1-100, JPEG/WebP"),
) -> Response:
    t0 = time.perf_counter()
    settings, registry = request.app.state.settings, request.app.state.registry
    query = {"scale": scale, "model": model, "format": format, "quality": quality}
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    if multipart:  # options may be form fields: read the (size-limited) body first
        data, form = await upload.read_image(request, settings.max_body_bytes)
    opts = parse_options(query, form if multipart else {})
    m = registry.upscaler(opts.model, opts.scale)
    try:
        async with upscaler.admitted(m, settings):  # 503 before any decoding when the model is saturated
            if not multipart:
                data = await upload.read_body(request, settings.max_body_bytes)
            image = await run_in_threadpool(imaging.decode, data, settings.max_input_pixels)
            del data
            w, h = image.size
            out_size = (w * m.scale, h * m.scale)
            if out_size[0] * out_size[1] > settings.max_output_pixels:
                raise errors.too_large(
                    f"output would be {out_size[0]}x{out_size[1]} = {out_size[0] * out_size[1]} pixels; the limit is "
                    f"{settings.max_output_pixels} (GAN_MAX_OUTPUT_PIXELS)"
                )
            fmt = image.output_format(opts.format, out_size)
            pixels = await upscaler.upscale(m, image, settings.tile_size, settings.tile_overlap, request.is_disconnected)
            alpha = None if image.alpha is None else await run_in_threadpool(imaging.resize_alpha, image.alpha, out_size)
            body, media_type = await run_in_threadpool(imaging.encode, pixels, alpha, image.gray, fmt, opts.quality)
    except errors.ApiError:
        if not multipart and "data" not in locals():  # refused before the body was read
            await upload.discard_body(request, settings.max_body_bytes)
        raise
    except upscaler.ClientGone:
        log.info("client went away during /upscale; its remaining tiles were dropped")
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it, metrics do
    headers = {
        "X-Model": m.name, "X-Scale": str(m.scale), "X-Input-Size": f"{w}x{h}",
        "X-Output-Size": f"{out_size[0]}x{out_size[1]}",
        "X-Processing-Time-Ms": f"{(time.perf_counter() - t0) * 1000:.1f}",
    }
    if image.frames > 1:
        headers["X-Frames-Used"] = f"1 of {image.frames}"
    return Response(body, media_type=media_type, headers=headers)
