"""The generic client API: list, status, outputs, delete, and runs."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from api.auth import ApiKey
from api.deps import Prefect, Service
from api.schemas import Accepted, ClientList, ClientView, OutputsView, RunView, TaskView

router = APIRouter(prefix="/api", tags=["clients"], dependencies=[ApiKey])

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, description="Rows to skip.")]


@router.get("/clients", response_model=ClientList)
def list_clients(service: Service, limit: Limit = 100, offset: Offset = 0) -> ClientList:
    """Read from the registry only: no call to Prefect per client."""
    clients, total = service.list_clients(limit=limit, offset=offset)
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
    if latest is not None and latest.operation == "provision" and latest.result:
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
    accepted = service.start_operation(str(client_uuid), "destroy", cascade=cascade)
    return Accepted.of(accepted.run, accepted.created)


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
        if logs:
            view.logs = await prefect.read_logs(run.flow_run_id)
    return view
