from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError, field_validator

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
    try:
        data, form = None, {}
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            data, form = await upload.read_image(request, settings.max_body_bytes)  # options may be form fields
        opts = parse_options(query, form)
        m = registry.upscaler(opts.model, opts.scale)
        async with upscaler.admitted(m, settings):  # 503 before reading or decoding when the model is saturated
            if data is None:
                data = await upload.read_body(request, settings.max_body_bytes)
            result = await upscaler.run(m, data, opts.format, opts.quality, settings, request.is_disconnected)
    except errors.ApiError:
        await upload.discard_body(request, settings.max_body_bytes)  # lets the client read the error
        raise
    except upscaler.ClientGone:
        log.info("client went away during /upscale; its remaining tiles were dropped")
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it, metrics do
    headers = {
        "X-Model": m.name, "X-Scale": str(m.scale), "X-Input-Size": "{}x{}".format(*result.in_size),
        "X-Output-Size": "{}x{}".format(*result.out_size),
        "X-Processing-Time-Ms": f"{(time.perf_counter() - t0) * 1000:.1f}",
    }
    if result.frames > 1:
        headers["X-Frames-Used"] = f"1 of {result.frames}"
    return Response(result.body, media_type=result.media_type, headers=headers)
