from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", summary="Cards of every loaded model")
async def list_models(request: Request) -> dict:
    return {"models": request.app.state.registry.cards()}


@router.get("/{name}", summary="The card of one model")
async def get_model(name: str, request: Request) -> dict:
    return request.app.state.registry.get(name).describe()
