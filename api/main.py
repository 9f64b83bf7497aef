"""Assembles the gateway: ``uvicorn api.main:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from api.callbacks import CallbackSender
from api.clients.service import ClientService
from api.dispatcher import Dispatcher
from api.errors import Conflict, InvalidInput, NotFound
from api.hospitals.service import HospitalService
from api.keys import KeyService, RateLimiter
from api.limits import BodySizeLimit, excerpt
from api.metrics import Metrics, RequestCounter
from api.prefect_gateway import PrefectGateway
from api.registry.backup import backup_from_settings
from api.registry.db import Registry
from api.registry.models import InvalidTransition
from api.responses import AIRFLOW_ROUTES
from api.rollouts.service import RolloutService
from api.routes import clients, hospitals, keys, meta, provision, reconcile, rollouts, runs, targets
from api.runs.service import RunService
from api.sweeps.service import SweepService
from api.targets.service import TargetService
from flows.logs import configure as configure_logging
from flows.settings import get_settings
from flows.targets import all_targets


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    backup = backup_from_settings(settings)
    if backup is not None:
        backup.restore_if_missing()
    registry = Registry(settings.registry_url)
    registry.migrate()
    prefect = PrefectGateway()

    def wake() -> None:  # a new request is dispatched at once
        dispatcher.wake()

    client_service, run_service = ClientService(registry, wake), RunService(registry, wake)
    sweeps = SweepService(client_service, wake)
    rollout_service = RolloutService(client_service, settings, wake)
    dispatcher = Dispatcher(
        run_service,
        prefect,
        dispatch_interval=settings.dispatch_interval_seconds,
        sync_interval=settings.sync_interval_seconds,
        late_after=settings.late_run_seconds,
        pending_after=settings.pending_run_seconds,
        callbacks=CallbackSender(
            registry, settings.callback_secret.get_secret_value() if settings.callback_secret else None
        ),
        sweeps=sweeps,
        rollouts=rollout_service,
    )
    app.state.rollouts = rollout_service
    app.state.registry, app.state.prefect, app.state.dispatcher = registry, prefect, dispatcher
    app.state.clients, app.state.runs, app.state.sweeps = client_service, run_service, sweeps
    app.state.hospitals = HospitalService(client_service)
    app.state.targets = TargetService(client_service)
    for target in all_targets().values():  # a module edited since the last start: a new revision
        client_service.revisions.current(target.module)
    app.state.keys = KeyService(registry)
    app.state.metrics.attach(registry)
    dispatcher.on_dispatched = app.state.metrics.dispatch_latency.observe
    dispatcher.on_policies = app.state.metrics.count_policies
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    dispatcher.start()
    if backup is not None:
        backup.start()
    try:
        yield
    finally:
        await dispatcher.stop()
        if backup is not None:
            backup.stop()
        registry.dispose()


def create_app() -> FastAPI:
    configure_logging(get_settings().log_format)
    # Swagger UI and ReDoc from the installed package, not a CDN: /docs works offline.
    app = FastAPIOffline(
        title="tenantform",
        version=meta.VERSION,
        description="Per-client infrastructure built by Terraform, orchestrated by Prefect.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        status = 400 if _airflow_route(request.url.path) else 422
        return JSONResponse({"detail": jsonable_encoder(excerpt(list(exc.errors())))}, status_code=status)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": jsonable_encoder(excerpt(exc.errors))}, status_code=422)

    @app.exception_handler(Conflict)
    @app.exception_handler(InvalidTransition)
    async def _conflict(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    for router in (
        meta.router,
        provision.router,
        hospitals.router,
        clients.router,
        runs.router,
        reconcile.router,
        targets.router,
        rollouts.router,
        keys.router,
    ):
        app.include_router(router)
    app.state.metrics = Metrics()
    app.add_middleware(BodySizeLimit, limit=get_settings().max_body_bytes)
    app.add_middleware(RequestCounter, metrics=app.state.metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _airflow_route(path: str) -> bool:
    return path == "/provision" or path.startswith("/status/")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI declares 422 for invalid data everywhere; the Airflow routes answer 400."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in AIRFLOW_ROUTES:
            for operation in schema["paths"].get(path, {}).values():
                if "422" in operation.get("responses", {}):
                    answer = operation["responses"].pop("422")
                    answer["description"] = "Invalid request data (the Airflow document answers 400)."
                    invalid = answer["content"]["application/json"]["schema"]
                    unparsable = {"$ref": "#/components/schemas/ErrorDetail"}
                    answer["content"]["application/json"]["schema"] = {"anyOf": [invalid, unparsable]}
                    operation["responses"]["400"] = answer
        app.openapi_schema = schema
    return app.openapi_schema


app = create_app()
