"""Assembles the gateway: ``uvicorn api.main:app``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.dispatcher import Dispatcher
from api.prefect_gateway import PrefectGateway
from api.registry.backup import backup_from_settings
from api.registry.db import Registry
from api.registry.models import InvalidTransition
from api.routes import clients, hospitals, meta, provision, reconcile
from api.service import ClientService, Conflict, InvalidInput, NotFound
from api.settings import get_gateway_settings

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_gateway_settings()
    backup = backup_from_settings(settings)
    if backup is not None:
        backup.restore_if_missing()
    registry = Registry(settings.registry_url)
    registry.migrate()
    prefect = PrefectGateway()
    service = ClientService(registry)
    dispatcher = Dispatcher(
        service,
        prefect,
        dispatch_interval=settings.dispatch_interval_seconds,
        sync_interval=settings.sync_interval_seconds,
        late_after=settings.late_run_seconds,
    )
    service.wake = dispatcher.wake
    app.state.registry, app.state.service, app.state.prefect = registry, service, prefect
    app.state.dispatcher = dispatcher
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
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect call otherwise
    app = FastAPI(
        title="tenantform",
        version=meta.VERSION,
        description="Per-client infrastructure built by Terraform, orchestrated by Prefect.",
        lifespan=lifespan,
    )

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": exc.errors}, status_code=422)

    @app.exception_handler(Conflict)
    @app.exception_handler(InvalidTransition)
    async def _conflict(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    for router in (meta.router, provision.router, hospitals.router, clients.router, reconcile.router):
        app.include_router(router)
    return app


app = create_app()
