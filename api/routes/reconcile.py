"""Reconciliation on demand: sweep the fleet (or part of it) or one client, read a
client's drift and its history, and hand a scheduled sweep the fleet it plans."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query

from api.auth import ApiKey
from api.clients.filters import ClientFilter
from api.deps import Sweeps
from api.responses import BAD_BODY, CONFLICT, GUARDED, NOT_FOUND, UNAVAILABLE
from api.routes.paging import Limit, Offset
from api.schemas import DriftCheckView, DriftReport, DriftView, FleetPage, SweepView

router = APIRouter(
    prefix="/api",
    tags=["reconcile"],
    dependencies=[ApiKey],
    responses={**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT, **UNAVAILABLE},
)


@router.post("/reconcile", status_code=202, response_model=SweepView)
def reconcile_fleet(
    sweeps: Sweeps,
    filters: Annotated[
        ClientFilter | None, Body(description="Narrow the sweep; none: every ready client.")
    ] = None,
) -> SweepView:
    """One sweep (one flow run) plans every matching ready client. Answered at once: the
    dispatcher hands it to Prefect (``GET /api/sweeps/{sweep_id}`` follows it)."""
    return SweepView.of(sweeps.accept(filters or ClientFilter()))


@router.post("/clients/{client_uuid}/reconcile", status_code=202, response_model=SweepView)
def reconcile_client(client_uuid: UUID, sweeps: Sweeps) -> SweepView:
    """A sweep of this one client; 409 unless it is ready (or busy with a run)."""
    return SweepView.of(sweeps.accept_for_client(str(client_uuid)))


@router.get("/sweeps/{sweep_id}", response_model=SweepView)
def sweep_status(sweep_id: UUID, sweeps: Sweeps) -> SweepView:
    """A sweep asked through the API: accepted, dispatched (with its flow run) or failed."""
    return SweepView.of(sweeps.get(str(sweep_id)))


@router.get("/clients/{client_uuid}/drift", response_model=DriftReport)
def client_drift(
    client_uuid: UUID, sweeps: Sweeps, history: Annotated[int, Query(ge=0, le=200)] = 20
) -> DriftReport:
    """The last check and the ones before it, newest first."""
    client, records = sweeps.drift_of(str(client_uuid), history)
    return DriftReport(
        **DriftView.of(client).model_dump(),
        client_uuid=client.id,
        remediation=client.remediation,
        history=[DriftCheckView.of(r) for r in records],
    )


@router.get("/reconcile/fleet", response_model=FleetPage)
def fleet_page(sweeps: Sweeps, limit: Limit = 1000, offset: Offset = 0) -> FleetPage:
    """What a scheduled sweep plans, a page at a time (inputs, never secrets)."""
    targets, total = sweeps.fleet(ClientFilter(), limit=limit, offset=offset)
    return FleetPage(total=total, clients=targets)
