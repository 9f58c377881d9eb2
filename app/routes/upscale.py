from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app import upscaler
from app.routes.deps import BudgetDep, RegistryDep, SettingsDep
from app.routes.image_request import ImageTask, handle
from app.routes.openapi import COMMON_HEADERS, IMAGE_ERRORS, image_operation

router = APIRouter(tags=["upscale"])

MODEL_HELP = (
    "model name from /v1/models. sr-x4 / sr-x2: clean, sharp sources (renders, screenshots, good cameras); highest "
    "PSNR. real-x4-l1 / real-x2-l1: real photos with JPEG artefacts, noise or blur (web images, phone shots, old "
    "photos), faithful; real-x4 / real-x2: the same, crisper, with some invented texture. srgan-x4: "
    "the sharpest, most photo-like texture on clean sources, with invented detail (not for measurements)."
)


FACES_HELP = (
    "true: also find the faces in the image and upscale each with the face model (face-x4), pasted over the "
    "general result with a soft edge; X-Faces-Enhanced says how many. Faces whose crop is under GAN_FACE_MIN_PX or "
    "over GAN_FACE_MAX_PX input pixels keep the general result. The faces are plausible, not evidence of identity."
)


MODE_HELP = (
    "for real photos (JPEG artefacts, noise, blur) when you do not want to pick a model: faithful = the restoration "
    "model trained with a pixel loss only (real-x4-l1, real-x2-l1 up to x2: removes artefacts and noise, invents nothing, "
    "a little soft); crisp = its adversarial fine-tune (real-x4, real-x2 up to x2: sharper, with some invented "
    "texture). Not with model."
)


SCALE_HELP = (
    "any factor from 1 to 8 (default: the model's own, 4 without a model). The x2 model serves scales up to 2, the x4 "
    "model larger ones; its output is then resized to the exact size (Lanczos up, area down; X-Resize says which). "
    "The output is round(width x scale) x round(height x scale)."
)


class UpscaleOptions(BaseModel):
    scale: float | None = Field(None, ge=1, le=8, allow_inf_nan=False, description=SCALE_HELP)
    model: str | None = Field(None, description=MODEL_HELP)
    format: Literal["png", "jpeg", "webp", "tiff"] | None = Field(None,
                               description="output format; default: the input's family. 16-bit inputs stay 16-bit in png and tiff")
    quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality")
    faces: bool = Field(False, description=FACES_HELP)
    mode: Literal["faithful", "crisp"] | None = Field(None, description=MODE_HELP)


UPSCALE = ImageTask(
    "upscale", UpscaleOptions,
    pick=lambda registry, o: registry.upscaler(o.model, o.scale, o.mode),
    work=lambda settings, registry, o, m, data, gone: upscaler.run(
        m, data, o.format, o.quality, settings, gone, registry.face_model() if o.faces else None, o.scale),
    headers=lambda o, m: {"X-Model": m.name},
    also=lambda registry, o: [registry.face_model()] if o.faces else [],  # 422 before the body is read when there is none
)


UPSCALE_HEADERS = {
    **COMMON_HEADERS,
    "X-Scale": "the scale asked (or the model's)", "X-Model-Scale": "the model's own scale",
    "X-Resize": "none, or how the model's output was resized to the scale asked (lanczos or area, from -> to)",
    "X-Faces-Enhanced": "faces=true: how many faces the face model upscaled", "X-Face-Model": "faces=true: the face model",
}


@router.post(
    "/upscale", summary="Upscale an image by any factor from 1 to 8", responses=IMAGE_ERRORS,
    openapi_extra=image_operation(UpscaleOptions, "the upscaled image", UPSCALE_HEADERS, {"scale": 4, "format": "png"}),
)
async def upscale(request: Request, settings: SettingsDep, registry: RegistryDep, budget: BudgetDep) -> Response:
    return await handle(request, UPSCALE, settings, registry, budget)
