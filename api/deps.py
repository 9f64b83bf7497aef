"""Dependencies the routes inject: one service per noun, the registry, Prefect."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.clients.service import ClientService
from api.hospitals.service import HospitalService
from api.prefect_gateway import PrefectGateway
from api.registry.db import Registry
from api.runs.service import RunService
from api.sweeps.service import SweepService


def get_registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


def get_clients(request: Request) -> ClientService:
    return request.app.state.clients  # type: ignore[no-any-return]


def get_runs(request: Request) -> RunService:
    return request.app.state.runs  # type: ignore[no-any-return]


def get_hospitals(request: Request) -> HospitalService:
    return request.app.state.hospitals  # type: ignore[no-any-return]


def get_sweeps(request: Request) -> SweepService:
    return request.app.state.sweeps  # type: ignore[no-any-return]


def get_prefect(request: Request) -> PrefectGateway:
    return request.app.state.prefect  # type: ignore[no-any-return]


RegistryDep = Annotated[Registry, Depends(get_registry)]
Clients = Annotated[ClientService, Depends(get_clients)]
Runs = Annotated[RunService, Depends(get_runs)]
Hospitals = Annotated[HospitalService, Depends(get_hospitals)]
Sweeps = Annotated[SweepService, Depends(get_sweeps)]
Prefect = Annotated[PrefectGateway, Depends(get_prefect)]
