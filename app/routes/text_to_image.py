"""POST /text-to-image: a JSON body in; one image's bytes, or JSON with n base64 images, out."""
from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app import errors, upload
from app import text_to_image as t2i
from app.routes.openapi import errors as errors_doc
from app.upscaler import admitted

router = APIRouter(tags=["text-to-image"])
MAX_BODY = 16 * 1024  # a prompt is at most 300 characters: a JSON body needs far less
EXAMPLE: dict[str, Any] = {"prompt": "this flower has bright yellow petals and a dark center", "n": 1, "seed": 42, "size": 256, "format": "png"}


class TextToImageRequest(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    prompt: str = Field(min_length=1, max_length=300, description="what to draw (1-300 characters, stripped)")
    n: int = Field(1, ge=1, le=16, strict=True, description="number of images (1-16); n > 1 answers JSON")
    seed: int | None = Field(None, ge=0, lt=2**63, strict=True, description=(
        "image i of n uses seed + i; the same prompt and seed give the same bytes; random when absent (reported)"))
    size: Literal[64, 256] = Field(64, description="64: the generator's own output; 256: that image through the x4 upscaler")
    format: Literal["png", "jpeg", "webp"] = Field("png", description="image format")
    quality: int = Field(90, ge=1, le=100, strict=True, description="JPEG/WebP quality")
    model: str | None = Field(None, description="a text-to-image model from /v1/models; default: the loaded one")


def _request_body() -> dict:
    schema = TextToImageRequest.model_json_schema()
    schema.pop("title", None)
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema, "example": EXAMPLE}}},
        "responses": {200: {
            "description": "n = 1: the image bytes (headers X-Model, X-Seed, X-Upscaler for size 256); "
                           "n > 1: JSON {\"images\": [base64, ...], \"seeds\": [...], \"model\": ...}",
            "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "application/json": {}},
        }},
    }


async def parse(request: Request) -> TextToImageRequest:
    """The JSON body, validated: 415 for another content type, 400 for a body that is not JSON, 422 for bad fields."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        await upload.discard_body(request, MAX_BODY)
        raise errors.unsupported_media(f"send a JSON body with Content-Type: application/json (got '{ctype or 'none'}')")
    body = await upload.read_body(request, MAX_BODY)
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.bad_request(f"the body is not valid JSON: {e}") from None
    except RecursionError:  # thousands of nested arrays or objects
        raise errors.bad_request("the body is not valid JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise errors.bad_request('the body must be a JSON object, e.g. {"prompt": "a red flower"}')
    try:
        return TextToImageRequest.model_validate(raw)
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors())
        raise errors.unprocessable(msg) from None


@router.post("/text-to-image", summary="Generate images from a text prompt", openapi_extra=_request_body(),
             responses=errors_doc(400, 401, 404, 413, 415, 422, 429, 503, 504))
async def text_to_image(request: Request) -> Response:
    t0 = time.perf_counter()
    settings, registry = request.app.state.settings, request.app.state.registry
    req = await parse(request)
    generator = registry.generator(req.model)
    encoder = registry.get(generator.card["text_encoder"])
    native = int(generator.card.get("size", 64))
    if req.size not in (native, native * 4):
        raise errors.unprocessable(f"model '{generator.name}' makes {native} px images: size must be {native} or {native * 4}")
    upscaler = None
    if req.size != native:
        try:
            upscaler = registry.upscaler(None, 4)
        except errors.ApiError as e:
            raise errors.unprocessable(f"size {req.size} needs an x4 upscaler ({e.message}); ask for size {native}") from None
    seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
    async with admitted([generator, *([upscaler] if upscaler else [])], settings):
        out = await t2i.generate(generator, encoder, upscaler, req.prompt, req.n, seed, req.size, req.format, req.quality,
                                 request.app.state.prompt_cache, settings)
    headers = {"X-Model": generator.name, "X-Text-Encoder": encoder.name, "X-Seed": str(seed), "X-Size": str(out.size),
               "X-Prompt-Cache": "hit" if out.cached else "miss",
               "X-Processing-Time-Ms": f"{(time.perf_counter() - t0) * 1000:.1f}"}
    if out.upscaler is not None:
        headers["X-Upscaler"] = out.upscaler.name
    if req.n == 1:
        return Response(out.images[0], media_type=out.media_type, headers=headers)
    return JSONResponse({
        "images": [base64.b64encode(b).decode("ascii") for b in out.images], "seeds": out.seeds, "model": generator.name,
        "size": out.size, "format": req.format, "media_type": out.media_type,
        "upscaler": out.upscaler.name if out.upscaler else None,
    }, headers=headers)
