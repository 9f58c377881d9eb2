from __future__ import annotations

from fastapi import APIRouter, Path

from app.routes.deps import RegistryDep
from app.routes.openapi import errors

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", summary="Cards of every loaded model", responses=errors(401))
async def list_models(registry: RegistryDep) -> dict:
    return {"models": registry.cards()}


@router.get("/{name}", summary="The card of one model", responses=errors(401, 404, 422))
async def get_model(registry: RegistryDep, name: str = Path(description="a model name from /v1/models", examples=["sr-x4"])) -> dict:
    return registry.get(name).describe()
