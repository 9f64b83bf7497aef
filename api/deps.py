"""Dependencies the routes inject."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.prefect_gateway import PrefectGateway
from api.service import ClientService
from api.sweeps import SweepService


def get_service(request: Request) -> ClientService:
    return request.app.state.service  # type: ignore[no-any-return]


def get_prefect(request: Request) -> PrefectGateway:
    return request.app.state.prefect  # type: ignore[no-any-return]


def get_sweeps(request: Request) -> SweepService:
    return request.app.state.sweeps  # type: ignore[no-any-return]


Service = Annotated[ClientService, Depends(get_service)]
Prefect = Annotated[PrefectGateway, Depends(get_prefect)]
Sweeps = Annotated[SweepService, Depends(get_sweeps)]
