from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.routes.deps import RegistryDep

router = APIRouter(tags=["health"])


NOT_OK = {"description": "not live / not ready: {\"status\": why, ...} (Retry-After on /readyz)",
          "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}}}}}}


@router.get("/healthz", summary="Liveness: the process is up and every model's batch worker runs", responses={503: NOT_OK})
async def healthz(registry: RegistryDep) -> JSONResponse:
    """503 when a batch worker has died (the process cannot serve that model again: a restart is the cure)."""
    dead = [m.name for m in registry.workers if registry.ready and not m.batcher.alive]
    if dead:
        return JSONResponse({"status": "batch worker stopped", "models": dead}, 503)
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness: models loaded and warmed, not draining", responses={503: NOT_OK})
async def readyz(request: Request, registry: RegistryDep) -> JSONResponse:
    """Model names and their states only: why a model failed is in the server's log, not here."""
    state = request.app.state
    models = {name: m.provider for name, m in registry.models.items()}
    dead = [m.name for m in registry.workers if registry.ready and not m.batcher.alive]
    failed = {**{n: "failed to load" for n in registry.failed}, **{n: "batch worker stopped" for n in dead}}
    missing = registry.missing_required()
    body = {"models": models, "failed": failed, **({"missing_required": missing} if missing else {})}
    if state.draining:
        return JSONResponse({"status": "draining", **body}, 503, headers={"Retry-After": "5"})
    if not registry.ready or not models or dead or missing:
        status = ("loading" if not registry.ready else "no models" if not models else
                  "model worker stopped" if dead else "required models missing")
        return JSONResponse({"status": status, **body}, 503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready", **body})
