"""POST /text-to-image: a JSON body (or a multipart form, for a style image file) in; one image's bytes, or JSON
with n base64 images, out."""
from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile

from app import cpu, errors, imaging, upload
from app import text_to_image as t2i
from app.config import Settings
from app.engine import admitted
from app.model import Model
from app.routes.deps import PromptCacheDep, RegistryDep, SettingsDep
from app.routes.openapi import errors as errors_doc

router = APIRouter(tags=["text-to-image"])
MAX_BODY = 3 * 1024 * 1024  # a prompt is at most 300 characters; a style image (base64 in JSON) at most 2 MiB
LIMIT_NAME = "for /text-to-image: a prompt and a style image of at most 2 MiB, or GAN_MAX_BODY_BYTES if lower"
MAX_STYLE_BYTES = 2 * 1024 * 1024
INT_FIELDS = ("n", "seed", "detail_seed", "size", "quality")  # multipart fields arrive as text
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
    model: str | None = Field(None, description="a text-to-image model from /v1/models; default: the generator's default")
    generator: Literal["gan-int-cls", "lapgan"] | None = Field(None, description=(
        "the architecture: gan-int-cls (one 64 px generator; the default) or lapgan (a Laplacian pyramid 8 -> 64 px "
        "whose finer levels take their noise from detail_seed)"))
    detail_seed: int | None = Field(None, ge=0, lt=2**63, strict=True, description=(
        "lapgan: the seed of the finer levels' noise (16-64 px); default: the seed. The same seed with another "
        "detail_seed keeps the composition and redraws the detail"))
    vary: Literal["seed", "detail"] = Field("seed", description=(
        "n > 1: 'seed' gives image i seed + i (and detail_seed + i); 'detail' (lapgan) keeps the seed for every image "
        "and gives image i detail_seed + i: n detail draws of one composition"))
    style_image: str | None = Field(None, max_length=MAX_STYLE_BYTES * 4 // 3 + 4, description=(
        "base64 PNG/JPEG/WebP (at most 2 MiB; or a file field in a multipart form): its pose, layout and background "
        "(the style encoder's noise for it replaces the seed's), the prompt's content. Centre-cropped to a square"))

    @model_validator(mode="after")
    def _seeds_in_range(self) -> TextToImageRequest:
        for name in ("seed", "detail_seed"):  # image i uses seed + i: every one must be a seed that can be sent back
            value = getattr(self, name)
            if value is not None and value + self.n - 1 >= 2**63:
                raise ValueError(f"{name} + n - 1 must be below 2**63 (image i of n uses {name} + i)")
        return self


def _request_body() -> dict:
    schema = TextToImageRequest.model_json_schema()
    schema.pop("title", None)
    return {
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": schema, "example": EXAMPLE},
            "multipart/form-data": {"schema": {**schema, "properties": {
                **schema["properties"], "style_image": {"type": "string", "format": "binary", "description": "the style image file"}}}},
        }},
        "responses": {200: {
            "description": "n = 1: the image bytes (headers X-Model, X-Seed, X-Upscaler for size 256); "
                           "n > 1: JSON {\"images\": [base64, ...], \"seeds\": [...], \"model\": ...}",
            "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "application/json": {}},
        }},
    }


async def parse(request: Request, settings: Settings) -> tuple[TextToImageRequest, bytes | None]:
    """The request, validated, and the style image's bytes if any: a JSON body (415 for another content type than
    JSON or multipart, 400 for a body that is not JSON), or a multipart form whose fields are the JSON's and whose
    file field ``style_image`` is the style image; 422 for bad fields."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = min(MAX_BODY, settings.max_body_bytes)
    if ctype == "multipart/form-data":
        return await _parse_form(request, limit)
    if ctype != "application/json" and not ctype.endswith("+json"):
        await upload.discard_body(request, limit)
        raise errors.unsupported_media(f"send a JSON body with Content-Type: application/json, or a multipart form (got '{ctype or 'none'}')")
    body = await upload.read_body(request, limit, LIMIT_NAME)
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.bad_request(f"the body is not valid JSON: {e}") from None
    except RecursionError:  # thousands of nested arrays or objects
        raise errors.bad_request("the body is not valid JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise errors.bad_request('the body must be a JSON object, e.g. {"prompt": "a red flower"}')
    req = _validate(raw)
    if req.style_image is None:
        return req, None
    encoded = req.style_image.strip()
    if encoded.startswith("data:"):  # a data URL, as a browser's FileReader gives: data:image/png;base64,....
        head, _, encoded = encoded.partition(",")
        if not head.endswith(";base64"):
            raise errors.unprocessable("style_image: a data URL must be base64 (data:image/png;base64,...)")
    try:
        style = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise errors.unprocessable("style_image: not valid base64") from None
    if not style:
        raise errors.unprocessable("style_image: empty; send the image's bytes in base64, or leave the field out")
    return req, style


async def _parse_form(request: Request, limit: int) -> tuple[TextToImageRequest, bytes | None]:
    form = await upload.parse_form(request, await upload.read_body(request, limit, LIMIT_NAME), max_files=1, max_fields=16)
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    for k in INT_FIELDS:  # numbers arrive as text; anything else stays text and fails validation, naming the field
        if isinstance(fields.get(k), str) and fields[k].strip().isdigit():
            fields[k] = int(fields[k])
    if "style_image" in fields:
        raise errors.unprocessable("style_image: send it as a file field of the form (or base64 in a JSON body)")
    req = _validate(fields)
    file = form.get("style_image")
    if file is None:
        return req, None
    if not isinstance(file, UploadFile):
        raise errors.bad_request("style_image must be a file field")
    data = await file.read()
    if len(data) > MAX_STYLE_BYTES:
        raise errors.too_large(f"style_image is {len(data)} bytes; the limit is {MAX_STYLE_BYTES}")
    return req, data


def _validate(raw: dict) -> TextToImageRequest:
    try:
        return TextToImageRequest.model_validate(raw)
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors())
        raise errors.unprocessable(msg) from None


def _check(req: TextToImageRequest, generator: Model, levels: list[int], style: bytes | None) -> None:
    """Options that the chosen generator (its detail ``levels``) cannot honour: 422, naming them."""
    if levels:
        return
    if req.detail_seed is not None or req.vary == "detail":
        raise errors.unprocessable(f"detail_seed and vary=detail need a generator with detail levels (lapgan); "
                                   f"'{generator.name}' is {generator.card.get('arch', 'not one')}")
    if style is not None and req.n > 1:
        raise errors.unprocessable(f"with style_image every image of '{generator.name}' would be the same (its only noise "
                                   "comes from the style image): ask for n = 1, or generator=lapgan for detail draws")


async def _style_pixels(data: bytes, settings: Settings) -> np.ndarray:
    try:
        decoded = await cpu.run(imaging.decode, data, settings.max_input_pixels, settings.max_input_side)
    except errors.ApiError as e:  # name the field: the body itself was fine
        raise errors.ApiError(e.status, e.code, f"style_image: {e.message}", e.headers) from None
    return t2i.style_input(decoded.pixels)


@router.post("/text-to-image", summary="Generate images from a text prompt", openapi_extra=_request_body(),
             responses=errors_doc(400, 401, 404, 413, 415, 422, 429, 503, 504))
async def text_to_image(request: Request, settings: SettingsDep, registry: RegistryDep, cache: PromptCacheDep) -> Response:
    t0 = time.perf_counter()
    req, style_bytes = await parse(request, settings)
    generator = registry.generator(req.model, req.generator)
    levels = t2i.detail_levels(generator)
    _check(req, generator, levels, style_bytes)
    encoder = registry.get(generator.card["text_encoder"])
    style = registry.style_encoder(generator) if style_bytes is not None else None
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
    ask = t2i.Ask(req.prompt, req.n, seed, seed if req.detail_seed is None else req.detail_seed, req.vary, req.size, req.format,
                  req.quality, await _style_pixels(style_bytes, settings) if style_bytes is not None else None)
    async with admitted([generator, *([upscaler] if upscaler else []), *([style] if style else [])], settings):
        out = await t2i.generate(generator, encoder, upscaler, style, ask, cache, settings)
    headers = {"X-Model": generator.name, "X-Text-Encoder": encoder.name, "X-Size": str(out.size),
               "X-Prompt-Cache": "hit" if out.cached else "miss",
               "X-Processing-Time-Ms": f"{(time.perf_counter() - t0) * 1000:.1f}"}
    if style is None:  # with a style image, the style encoder's noise replaces the seed's
        headers["X-Seed"] = str(seed)
    if levels:
        headers["X-Detail-Seed"] = str(ask.detail_seed)
    if style is not None:
        headers["X-Style-Encoder"] = style.name
    if out.upscaler is not None:
        headers["X-Upscaler"] = out.upscaler.name
    if req.n == 1:
        return Response(out.images[0], media_type=out.media_type, headers=headers)
    return JSONResponse({
        "images": [base64.b64encode(b).decode("ascii") for b in out.images], "seeds": out.seeds, "model": generator.name,
        "size": out.size, "format": req.format, "media_type": out.media_type,
        "upscaler": out.upscaler.name if out.upscaler else None,
        **({"detail_seeds": out.detail_seeds} if levels else {}),
    }, headers=headers)
