"""Reconciliation on demand: sweep the fleet (or part of it) or one client, read a
client's drift and its history, and hand a scheduled sweep the fleet it plans."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import ConfigDict

from api.auth import ApiKey
from api.deps import Prefect, Service
from api.responses import BAD_BODY, CONFLICT, GUARDED, NOT_FOUND, UNAVAILABLE
from api.schemas import DriftCheckView, DriftReport, DriftView, FleetPage, SweepAccepted
from api.service import ClientFilter
from flows.contract import Operation, SweepTarget
from flows.workflows import workflow

router = APIRouter(
    prefix="/api",
    tags=["reconcile"],
    dependencies=[ApiKey],
    responses={**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT, **UNAVAILABLE},
)


class SweepFilter(ClientFilter):
    model_config = ConfigDict(extra="forbid")


async def _sweep(prefect: Prefect, targets: list[SweepTarget]) -> SweepAccepted:
    try:
        run_id = await prefect.start_sweep(workflow(Operation.reconcile).deployment_name, targets)
    except Exception as exc:
        raise HTTPException(503, f"Prefect did not take the sweep: {type(exc).__name__}: {exc}") from None
    return SweepAccepted(run_id=run_id, clients=len(targets))


@router.post("/reconcile", status_code=202, response_model=SweepAccepted)
async def reconcile_fleet(
    service: Service,
    prefect: Prefect,
    filters: Annotated[
        ClientFilter | None, Body(description="Narrow the sweep; none: every ready client.")
    ] = None,
) -> SweepAccepted:
    """One sweep (one flow run) plans every matching ready client."""
    targets, _ = service.sweep_targets(filters or ClientFilter())
    return await _sweep(prefect, targets)


@router.post("/clients/{client_uuid}/reconcile", status_code=202, response_model=SweepAccepted)
async def reconcile_client(client_uuid: UUID, service: Service, prefect: Prefect) -> SweepAccepted:
    """A sweep of this one client; 409 unless it is ready (or busy with a run)."""
    client, _ = service.get_client(str(client_uuid))
    targets, _ = service.sweep_targets(ClientFilter(), client_id=client.id)
    if not targets:
        raise HTTPException(409, f"client {client.id} is {client.status}: there is no settled state to check")
    return await _sweep(prefect, targets)


@router.get("/clients/{client_uuid}/drift", response_model=DriftReport)
def client_drift(
    client_uuid: UUID, service: Service, history: Annotated[int, Query(ge=0, le=200)] = 20
) -> DriftReport:
    """The last check and the ones before it, newest first."""
    client, records = service.drift_of(str(client_uuid), history)
    return DriftReport(
        **DriftView.of(client).model_dump(),
        client_uuid=client.id,
        remediation=client.remediation,
        history=[DriftCheckView.of(r) for r in records],
    )


@router.get("/reconcile/fleet", response_model=FleetPage)
def fleet_page(
    service: Service,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> FleetPage:
    """What a scheduled sweep plans, a page at a time (inputs, never secrets)."""
    targets, total = service.sweep_targets(ClientFilter(), limit=limit, offset=offset)
    return FleetPage(total=total, clients=targets)
