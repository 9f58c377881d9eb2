from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from app import errors, imaging, upload, upscaler

router = APIRouter(tags=["upscale"])


class UpscaleOptions(BaseModel):
    scale: int | None = Field(None, description="2 or 4; picks the default model for that scale (default 4)")
    model: str | None = Field(None, description="explicit model name from /v1/models, e.g. sr-x4")
    format: Literal["png", "jpeg", "webp"] | None = Field(None, description="output format; default: the input's family")
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


def parse_options(query: dict[str, str], form: dict[str, str]) -> UpscaleOptions:
    raw = {**{k: v for k, v in form.items() if k in UpscaleOptions.model_fields}, **{k: v for k, v in query.items() if v is not None}}
    try:
        return UpscaleOptions.model_validate(raw)
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise errors.unprocessable(msg) from None


@router.post("/upscale", summary="Upscale an image x2 or x4", openapi_extra=IMAGE_BODY)
async def upscale(
    request: Request,
    scale: int | None = Query(None, description="2 or 4"),
    model: str | None = Query(None, description="model name, e.g. sr-x4"),
    format: str | None = Query(None, description="png, jpeg or webp"),
    quality: int | None = Query(None, description="1-100, JPEG/WebP"),
) -> Response:
    t0 = time.perf_counter()
    settings, registry = request.app.state.settings, request.app.state.registry
    data, form = await upload.read_image(request, settings.max_body_bytes)
    opts = parse_options({"scale": scale, "model": model, "format": format, "quality": quality}, form)
    m = registry.upscaler(opts.model, opts.scale)
    image = await run_in_threadpool(imaging.decode, data, settings.max_input_pixels)
    w, h = image.size
    out_pixels = w * h * m.scale * m.scale
    if out_pixels > settings.max_output_pixels:
        raise errors.too_large(
            f"output would be {w * m.scale}x{h * m.scale} = {out_pixels} pixels; the limit is "
            f"{settings.max_output_pixels} (GAN_MAX_OUTPUT_PIXELS)"
        )
    pixels = await upscaler.run_request(m, image, settings, request.is_disconnected)
    fmt = opts.format or image.default_output_format()
    alpha = None if image.alpha is None else await run_in_threadpool(imaging.resize_alpha, image.alpha, (w * m.scale, h * m.scale))
    body, media_type = await run_in_threadpool(imaging.encode, pixels, alpha, image.gray, fmt, opts.quality)
    headers = {
        "X-Model": m.name, "X-Scale": str(m.scale), "X-Input-Size": f"{w}x{h}",
        "X-Output-Size": f"{w * m.scale}x{h * m.scale}",
        "X-Processing-Time-Ms": f"{(time.perf_counter() - t0) * 1000:.1f}",
    }
    if image.frames > 1:
        headers["X-Frames-Used"] = f"1 of {image.frames}"
    return Response(body, media_type=media_type, headers=headers)
