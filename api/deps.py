"""Dependencies the routes inject: one service per noun, the registry, Prefect, each as
``api.main`` put it on the app's state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from api.clients.service import ClientService
from api.hospitals.service import HospitalService
from api.prefect_gateway import PrefectGateway
from api.registry.db import Registry
from api.runs.service import RunService
from api.sweeps.service import SweepService
from api.targets.service import TargetService


def _state(name: str) -> Callable[[Request], Any]:
    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get


RegistryDep = Annotated[Registry, Depends(_state("registry"))]
Clients = Annotated[ClientService, Depends(_state("clients"))]
Runs = Annotated[RunService, Depends(_state("runs"))]
Hospitals = Annotated[HospitalService, Depends(_state("hospitals"))]
Sweeps = Annotated[SweepService, Depends(_state("sweeps"))]
Targets = Annotated[TargetService, Depends(_state("targets"))]
Prefect = Annotated[PrefectGateway, Depends(_state("prefect"))]
