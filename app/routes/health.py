from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: models loaded and warmed, not draining")
async def readyz(request: Request) -> JSONResponse:
    registry, state = request.app.state.registry, request.app.state
    models = {name: m.session.provider for name, m in registry.models.items()}
    body = {"models": models, "failed": registry.failed}
    if state.draining:
        return JSONResponse({"status": "draining", **body}, 503, headers={"Retry-After": "5"})
    if not registry.ready or not models:
        return JSONResponse({"status": "loading" if not registry.ready else "no models", **body}, 503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready", **body})
