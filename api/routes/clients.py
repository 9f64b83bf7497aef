"""The generic client API: list, status, outputs, change, retry, plan, delete, and runs
(history, approve, reject, cancel)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.auth import ApiKey, still_admitted
from api.deps import Prefect, Service
from api.registry.models import Approval, ClientStatus, Run
from api.responses import BAD_BODY, CONFLICT, GUARDED, NOT_FOUND, UNAVAILABLE, as_json
from api.run_events import EVENTS, RunFollower
from api.schemas import (
    Accepted,
    ClientList,
    ClientSettings,
    ClientView,
    OutputsView,
    ProgressView,
    RunList,
    RunSummary,
    RunView,
    TaskView,
)
from api.service import ClientFilter, Conflict
from api.settings import get_gateway_settings
from flows.contract import DriftStatus, Operation

router = APIRouter(
    prefix="/api",
    tags=["clients"],
    dependencies=[ApiKey],
    responses={**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT},
)

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]


@router.get("/clients", response_model=ClientList)
def list_clients(
    service: Service,
    status: Annotated[ClientStatus | None, Query(description="Only clients in this status.")] = None,
    drift: Annotated[DriftStatus | None, Query(description="Only clients with this drift status.")] = None,
    target: Annotated[str | None, Query(max_length=64, description="Only clients of this target.")] = None,
    parent: Annotated[UUID | None, Query(description="Only sub-clients of this client.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> ClientList:
    """Read from the registry only (indexed filters): no call to Prefect per client."""
    filters = ClientFilter(status=status, drift=drift, target=target, parent=parent)
    clients, total = service.list_clients(limit=limit, offset=offset, filters=filters)
    return ClientList(total=total, limit=limit, offset=offset, clients=[ClientView.of(c) for c in clients])


@router.get("/clients/{client_uuid}/status", response_model=ClientView)
def client_status(client_uuid: UUID, service: Service) -> ClientView:
    client, latest = service.get_client(str(client_uuid))
    return ClientView.of(client, latest)


@router.get("/clients/{client_uuid}/outputs", response_model=OutputsView)
def client_outputs(client_uuid: UUID, service: Service) -> OutputsView:
    """Terraform outputs; values Terraform marks sensitive are never returned, only named."""
    client, latest = service.get_client(str(client_uuid))
    hidden: list[str] = []
    if latest is not None and latest.operation == Operation.provision and latest.result:
        hidden = latest.result.get("sensitive_outputs", [])
    return OutputsView(
        client_uuid=client.id, status=client.status, outputs=client.outputs or {}, sensitive_outputs=hidden
    )


@router.delete("/clients/{client_uuid}", status_code=202, response_model=Accepted)
def delete_client(
    client_uuid: UUID,
    service: Service,
    cascade: Annotated[bool, Query(description="Also destroy sub-clients (sub-hospitals).")] = False,
) -> Accepted:
    """Destroy the client's stack through a flow run."""
    accepted = service.start_operation(str(client_uuid), Operation.destroy, cascade=cascade)
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
    service: Service,
    response: Response,
    patch: Annotated[
        dict[str, Any],
        Body(
            description="A JSON merge patch (RFC 7396) of the client's inputs.",
            examples=[{"count": 3}],
            media_type="application/merge-patch+json",
        ),
    ],
    approval: PerRequestApproval = None,
) -> Accepted:
    """Validated by the target's own model; a provision run applies the difference."""
    accepted = service.update_client(str(client_uuid), patch, approval=approval)
    if accepted is None:
        response.status_code = 200
        client, latest = service.get_client(str(client_uuid))
        return Accepted.unchanged(client.id, latest)
    return Accepted.of(accepted.run, accepted.created)


@router.put("/clients/{client_uuid}/settings", response_model=ClientView)
def client_settings(
    client_uuid: UUID, body: ClientSettings, service: Service, request: Request
) -> ClientView:
    if (
        "callback_url" in body.model_fields_set
        and body.callback_url is not None
        and not callbacks_signed(request)
    ):
        raise Conflict("set CALLBACK_SECRET on the gateway first: callbacks are always signed")
    service.configure(
        str(client_uuid),
        approval=body.approval,
        remediation=body.remediation,
        callback_url=str(body.callback_url) if body.callback_url else None,
        set_callback="callback_url" in body.model_fields_set,
    )
    client, latest = service.get_client(str(client_uuid))
    return ClientView.of(client, latest)


@router.post("/clients/{client_uuid}/retry", status_code=202, response_model=Accepted)
def retry_client(client_uuid: UUID, service: Service, approval: PerRequestApproval = None) -> Accepted:
    """The last run again (same operation, same inputs); 409 unless it failed or was cancelled."""
    accepted = service.retry(str(client_uuid), approval=approval)
    return Accepted.of(accepted.run, accepted.created)


@router.post("/clients/{client_uuid}/plan", status_code=202, response_model=Accepted)
def plan_client(client_uuid: UUID, service: Service) -> Accepted:
    """A speculative plan: the run's result has the change summary and the resources."""
    accepted = service.start_operation(str(client_uuid), Operation.plan)
    return Accepted.of(accepted.run, accepted.created)


@router.get("/clients/{client_uuid}/runs", response_model=RunList)
def client_runs(client_uuid: UUID, service: Service, limit: Limit = 50, offset: Offset = 0) -> RunList:
    """Newest first."""
    runs, total = service.runs_of(str(client_uuid), limit=limit, offset=offset)
    return RunList(total=total, limit=limit, offset=offset, runs=[RunSummary.of(r) for r in runs])


@router.post("/runs/{run_id}/approve", response_model=RunSummary, responses=UNAVAILABLE)
async def approve_run(run_id: UUID, service: Service, prefect: Prefect) -> RunSummary:
    """Apply exactly the plan the run saved; a plan made stale by another apply is refused."""
    flow_run_id = service.awaiting_approval_flow_run(str(run_id))
    try:
        await prefect.resume(flow_run_id, {"approve": True})
    except Exception as exc:
        raise HTTPException(503, f"Prefect did not take the approval: {exc}") from None
    return RunSummary.of(service.approve(str(run_id)))


@router.post("/runs/{run_id}/reject", response_model=RunSummary)
def reject_run(run_id: UUID, service: Service) -> RunSummary:
    """End a run awaiting approval without applying its plan."""
    service.awaiting_approval_flow_run(str(run_id))
    return RunSummary.of(service.cancel(str(run_id), "plan rejected"))


@router.post("/runs/{run_id}/cancel", response_model=RunSummary)
def cancel_run(run_id: UUID, service: Service) -> RunSummary:
    """Works in every open state; Terraform is interrupted so that it releases its lock and
    the run ends ``cancelled``. 409 when the run has already ended."""
    return RunSummary.of(service.cancel(str(run_id), "cancelled through the API"))


@router.get("/runs/{run_id}", response_model=RunView)
async def get_run(
    run_id: UUID,
    service: Service,
    prefect: Prefect,
    logs: Annotated[bool, Query(description="Include the run's log lines.")] = False,
) -> RunView:
    run = service.get_run(str(run_id))
    view = RunView.of(run)
    if run.flow_run_id:
        view.tasks = [TaskView.model_validate(t) for t in await prefect.read_tasks(run.flow_run_id)]
        progress = await prefect.read_progress(run.flow_run_id, run.client_id)
        view.progress = ProgressView.of(progress) if progress else None
        if logs:
            view.logs = await prefect.read_logs(run.flow_run_id)
    return view


async def followed_run(run_id: UUID, service: Service, prefect: Prefect) -> Run:
    """Checked before the stream opens, so these answer with a status code: an unknown run
    is a 404, an unreachable Prefect a 503 (a stream would otherwise never see an end)."""
    run = service.get_run(str(run_id))
    problem = await prefect.healthy()
    if problem is not None:
        raise HTTPException(503, f"Prefect did not answer: {problem}")
    return run


@router.get(
    "/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses=as_json({**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT, **UNAVAILABLE}),
    response_description=EVENTS,
)
async def run_events(
    run: Annotated[Run, Depends(followed_run)], service: Service, prefect: Prefect, request: Request
) -> AsyncIterator[ServerSentEvent]:
    """Follow a run as server-sent events (`curl -N`): its status, task states, log lines
    and Terraform progress as they change, then its end; the stream closes when the run
    has ended (at once, after its history, for a run already ended), or with an `error`
    event once the key that opened it is revoked."""
    poll = get_gateway_settings().sync_interval_seconds
    follower = RunFollower(service, prefect, run.id, poll=poll, admitted=still_admitted(request))
    async for event in follower.events():
        yield event
