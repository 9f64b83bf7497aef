"""The generic client API: list, status, outputs, change, settings, retry, plan, delete,
and a client's runs."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request, Response

from api.auth import ApiKey
from api.clients.filters import ClientFilter
from api.clients.labels import selectors
from api.deps import Clients, Runs
from api.errors import Conflict
from api.registry.models import Approval, ClientStatus
from api.responses import BAD_BODY, CONFLICT, GUARDED, NOT_FOUND
from api.routes.paging import Limit, Offset
from api.schemas import (
    Accepted,
    ClientList,
    ClientSettings,
    ClientView,
    OutputsView,
    RunList,
    RunSummary,
    UpgradeRequest,
)
from flows.contract import DriftStatus, Operation

router = APIRouter(
    prefix="/api",
    tags=["clients"],
    dependencies=[ApiKey],
    responses={**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT},
)


@router.get("/clients", response_model=ClientList)
def list_clients(
    clients: Clients,
    status: Annotated[ClientStatus | None, Query(description="Only clients in this status.")] = None,
    drift: Annotated[DriftStatus | None, Query(description="Only clients with this drift status.")] = None,
    target: Annotated[str | None, Query(max_length=64, description="Only clients of this target.")] = None,
    parent: Annotated[UUID | None, Query(description="Only sub-clients of this client.")] = None,
    label: Annotated[
        list[str] | None,
        Query(
            max_length=32,
            description="Only clients with this label: key=value, or key for any value; "
            "repeated: all of them.",
            examples=["ring=canary"],
        ),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> ClientList:
    """Read from the registry only (indexed filters): no call to Prefect per client."""
    filters = ClientFilter(
        status=status, drift=drift, target=target, parent=parent, labels=selectors(label or [])
    )
    found, total = clients.list_clients(limit=limit, offset=offset, filters=filters)
    return ClientList(total=total, limit=limit, offset=offset, clients=[ClientView.of(c) for c in found])


@router.get("/clients/{client_uuid}/status", response_model=ClientView)
def client_status(client_uuid: UUID, clients: Clients) -> ClientView:
    client, latest = clients.get_client(str(client_uuid))
    return ClientView.of(client, latest)


@router.get("/clients/{client_uuid}/outputs", response_model=OutputsView)
def client_outputs(client_uuid: UUID, clients: Clients) -> OutputsView:
    """Terraform outputs; values Terraform marks sensitive are never returned, only named."""
    client, latest = clients.get_client(str(client_uuid))
    hidden: list[str] = []
    if latest is not None and latest.operation == Operation.provision and latest.result:
        hidden = latest.result.get("sensitive_outputs", [])
    return OutputsView(
        client_uuid=client.id, status=client.status, outputs=client.outputs or {}, sensitive_outputs=hidden
    )


@router.delete("/clients/{client_uuid}", status_code=202, response_model=Accepted)
def delete_client(
    client_uuid: UUID,
    clients: Clients,
    cascade: Annotated[bool, Query(description="Also destroy sub-clients (sub-hospitals).")] = False,
) -> Accepted:
    """Destroy the client's stack through a flow run."""
    accepted = clients.start_operation(str(client_uuid), Operation.destroy, cascade=cascade)
    return Accepted.of(accepted.run, accepted.created)


def callbacks_signed(request: Request) -> bool:
    return bool(request.app.state.dispatcher.callbacks.secret)


PerRequestApproval = Annotated[
    Approval | None,
    Query(description="required: plan, then wait for approval (default: the client's setting)."),
]


@router.patch(
    "/clients/{client_uuid}",
    status_code=202,
    response_model=Accepted,
    responses={200: {"model": Accepted, "description": "The patch changes nothing: no run started."}},
)
def change_client(
    client_uuid: UUID,
    clients: Clients,
    response: Response,
    patch: Annotated[
        dict[str, Any],
        Body(
            description="A JSON merge patch (RFC 7396) of the client's inputs; its labels member "
            "merges into the client's labels (null removes one) without a run.",
            examples=[{"count": 3}, {"labels": {"ring": "canary", "region": None}}],
            media_type="application/merge-patch+json",
        ),
    ],
    approval: PerRequestApproval = None,
) -> Accepted:
    """Validated by the target's own model; a provision run applies the difference with the
    client's own module revision (a newer one comes only by an upgrade)."""
    accepted = clients.update_client(str(client_uuid), patch, approval=approval)
    if accepted is None:
        response.status_code = 200
        client, latest = clients.get_client(str(client_uuid))
        if "labels" in patch:
            return Accepted.unchanged(client.id, latest, "labels updated; no input changes: no run started")
        return Accepted.unchanged(client.id, latest)
    return Accepted.of(accepted.run, accepted.created)


@router.put("/clients/{client_uuid}/settings", response_model=ClientView)
def client_settings(
    client_uuid: UUID, body: ClientSettings, clients: Clients, request: Request
) -> ClientView:
    if (
        "callback_url" in body.model_fields_set
        and body.callback_url is not None
        and not callbacks_signed(request)
    ):
        raise Conflict("set CALLBACK_SECRET on the gateway first: callbacks are always signed")
    clients.configure(
        str(client_uuid),
        approval=body.approval,
        remediation=body.remediation,
        callback_url=str(body.callback_url) if body.callback_url else None,
        set_callback="callback_url" in body.model_fields_set,
    )
    client, latest = clients.get_client(str(client_uuid))
    return ClientView.of(client, latest)


@router.post("/clients/{client_uuid}/retry", status_code=202, response_model=Accepted)
def retry_client(client_uuid: UUID, clients: Clients, approval: PerRequestApproval = None) -> Accepted:
    """The last run again (same operation, same inputs); 409 unless it failed or was cancelled."""
    accepted = clients.retry(str(client_uuid), approval=approval)
    return Accepted.of(accepted.run, accepted.created)


@router.post("/clients/{client_uuid}/upgrade", status_code=202, response_model=Accepted)
def upgrade_client(
    client_uuid: UUID, body: UpgradeRequest, clients: Clients, approval: PerRequestApproval = None
) -> Accepted:
    """A provision run with another module revision of the client's target (same lock,
    history, approval and callbacks as any): the client is pinned to it once the run
    completes, and stays on its old one if it fails. 409 for a revision the target's module
    never had, or a client destroyed or being destroyed."""
    accepted = clients.upgrade(str(client_uuid), body.revision, approval=approval)
    return Accepted.of(accepted.run, accepted.created)


@router.post("/clients/{client_uuid}/plan", status_code=202, response_model=Accepted)
def plan_client(client_uuid: UUID, clients: Clients) -> Accepted:
    """A speculative plan: the run's result has the change summary and the resources."""
    accepted = clients.start_operation(str(client_uuid), Operation.plan)
    return Accepted.of(accepted.run, accepted.created)


@router.get("/clients/{client_uuid}/runs", response_model=RunList)
def client_runs(client_uuid: UUID, runs: Runs, limit: Limit = 50, offset: Offset = 0) -> RunList:
    """Newest first."""
    found, total = runs.runs_of(str(client_uuid), limit=limit, offset=offset)
    return RunList(total=total, limit=limit, offset=offset, runs=[RunSummary.of(r) for r in found])
