from __future__ import annotations

import secrets
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from app import degrader, errors
from app.model import Model
from app.registry import Registry
from app.routes.deps import BudgetDep, RegistryDep, SettingsDep
from app.routes.image_request import ImageTask, handle
from app.routes.openapi import COMMON_HEADERS, IMAGE_ERRORS, image_operation

router = APIRouter(tags=["degrade"])


class DegradeOptions(BaseModel):
    scale: int = Field(4, description="1, 2 or 4: the output is 1/scale of the input on each side", json_schema_extra={"enum": [1, 2, 4]})
    method: Literal["pipeline", "learned"] = Field(
        "pipeline", description="pipeline: the classical blur/resize/noise/JPEG pipeline; learned: the High-to-Low GAN")
    seed: int = Field(default_factory=lambda: secrets.randbelow(2**31), ge=0, lt=2**63,
                      description="same seed + same image = same bytes; random when absent (the X-Seed header says which)")
    strength: Literal["light", "medium", "heavy"] | None = Field(
        None, description="pipeline only: parameter preset (default medium, the real-world SR literature's ranges)")
    format: Literal["png", "jpeg", "webp"] | None = Field(None, description="output format; default: the input's family")
    quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality of the response")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: int) -> int:
        if v not in (1, 2, 4):
            raise ValueError("scale must be 1, 2 or 4")
        return v


def _pick(registry: Registry, o: DegradeOptions) -> Model:
    if o.method == "learned":
        if o.strength is not None:
            raise errors.unprocessable("strength applies to method=pipeline; the learned model has the strength it learned")
        return registry.degrader(o.scale)
    if registry.pipeline is None:
        raise errors.unavailable(1, "the degradation pipeline is not loaded yet")
    return registry.pipeline


DEGRADE = ImageTask(
    "degrade", DegradeOptions, pick=_pick,
    work=lambda settings, registry, o, m, data, gone: degrader.run(m, data, degrader.Degradation(
        o.method, o.scale, o.seed, o.strength or "medium", o.format, o.quality), settings, gone),
    headers=lambda o, m: {"X-Model": m.name, "X-Method": o.method, "X-Scale": str(o.scale), "X-Seed": str(o.seed)},
)


@router.post(
    "/degrade", summary="Degrade an image as a real low-quality photo would be (for training data or testing)", responses=IMAGE_ERRORS,
    openapi_extra=image_operation(DegradeOptions, "the degraded image", {
        **COMMON_HEADERS, "X-Method": "pipeline or learned", "X-Scale": "the reduction", "X-Seed": "the seed used (give it back for the same bytes)",
    }, {"scale": 4, "method": "pipeline", "seed": 42, "strength": "medium"}),
)
async def degrade(request: Request, settings: SettingsDep, registry: RegistryDep, budget: BudgetDep) -> Response:
    return await handle(request, DEGRADE, settings, registry, budget)
