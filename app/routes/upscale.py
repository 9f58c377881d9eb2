from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from app import upscaler
from app.routes.image_request import handle, image_body

router = APIRouter(tags=["upscale"])

MODEL_HELP = (
    "model name from /v1/models. sr-x4 / sr-x2: clean, sharp sources (renders, screenshots, good cameras); highest "
    "PSNR. real-x4: real photos with JPEG artefacts, noise or blur (web images, phone shots, old photos). srgan-x4: "
    "the sharpest, most photo-like texture on clean sources, with invented detail (not for measurements)."
)


FACES_HELP = (
    "true: also find the faces in the image and upscale each with the face model (face-x4), pasted over the "
    "general result with a soft edge; X-Faces-Enhanced says how many. Faces whose crop is under GAN_FACE_MIN_PX or "
    "over GAN_FACE_MAX_PX input pixels keep the general result. The faces are plausible, not evidence of identity."
)


class UpscaleOptions(BaseModel):
    scale: int | None = Field(None, description="2 or 4; picks the default model for that scale (default 4)")
    model: str | None = Field(None, description=MODEL_HELP)
    format: str | None = Field(None, pattern="^(png|jpeg|webp)$", description="output format; default: the input's family")
    quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality")
    faces: bool = Field(False, description=FACES_HELP)

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: int | None) -> int | None:
        if v is not None and v not in (2, 4):
            raise ValueError("scale must be 2 or 4")
        return v


@router.post(
    "/upscale", summary="Upscale an image x2 or x4",
    openapi_extra=image_body("the upscaled image", {"scale": "integer", "model": "string", "format": "string", "quality": "integer", "faces": "boolean"}),
)
async def upscale(
    request: Request,
    scale: str | None = Query(None, description="2 or 4"),
    model: str | None = Query(None, description=MODEL_HELP),
    format: str | None = Query(None, description="png, jpeg or webp"),
    quality: str | None = Query(None, description="1-100, JPEG/WebP"),
    faces: str | None = Query(None, description=FACES_HELP),
) -> Response:
    settings, registry = request.app.state.settings, request.app.state.registry
    return await handle(
        request, "/upscale", {"scale": scale, "model": model, "format": format, "quality": quality, "faces": faces},
        UpscaleOptions,
        pick=lambda o: registry.upscaler(o.model, o.scale),
        work=lambda o, m, data: upscaler.run(m, data, o.format, o.quality, settings, request.is_disconnected,
                                             registry.face_model() if o.faces else None),
        headers=lambda o, m: {"X-Model": m.name, "X-Scale": str(m.scale)},
        also=lambda o: [registry.face_model()] if o.faces else [],  # 422 before the body is read when there is none
    )
