"""Health, service status and API information."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from api.auth import ApiKey
from api.deps import Prefect, RegistryDep
from api.responses import GUARDED
from flows.targets import all_targets
from flows.workflows import workflows

router = APIRouter(tags=["meta"])

VERSION = "0.1.0"


class Health(BaseModel):
    status: str = Field(description="healthy or unhealthy")
    checks: dict[str, str] = Field(description="ok, or down with the reason, per dependency")


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is down; the checks say which."}},
)
async def health(registry: RegistryDep, prefect: Prefect) -> JSONResponse:
    """No auth. 200 when the registry and the Prefect API answer; 503 naming what is down."""
    checks: dict[str, str] = {}
    try:
        with registry.session() as session:
            session.execute(text("SELECT 1"))
        checks["registry"] = "ok"
    except Exception as exc:
        checks["registry"] = f"down: {type(exc).__name__}"
    problem = await prefect.healthy()
    checks["prefect"] = "ok" if problem is None else f"down: {problem}"[:300]
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "healthy" if healthy else "unhealthy", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format; no auth, like /health (counts only, never inputs or names)."""
    body = generate_latest(request.app.state.metrics.prometheus)
    return PlainTextResponse(body.decode(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", dependencies=[ApiKey], responses=GUARDED)
def root() -> dict[str, Any]:
    return {"service": "tenantform", "version": VERSION, "status": "running", "docs": "/docs"}


@router.get("/api", dependencies=[ApiKey], responses=GUARDED)
def api_info() -> dict[str, Any]:
    return {
        "service": "tenantform",
        "version": VERSION,
        "targets": {t.name: t.description for t in all_targets().values()},
        "workflows": {w.name: w.description for w in workflows().values()},
        "auth": "X-API-Key header (HTTP Basic also accepted on /provision and /status)",
    }
