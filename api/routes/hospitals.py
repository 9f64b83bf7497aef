"""The hospital document's API: register hospitals and sub-hospitals, status, list,
create-tables. Registration answers at once; a flow run provisions."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from api.auth import ApiKey
from api.deps import Service
from api.responses import BAD_BODY, CONFLICT, GUARDED, NOT_FOUND
from api.schemas import Accepted, ClientList, ClientView, HospitalAccepted
from api.service import Conflict, UniqueInFamily
from flows.clouds.hospital import HospitalRequest, database_name
from flows.contract import Operation
from flows.settings import get_settings
from flows.targets import hospital_targets

router = APIRouter(
    prefix="/api/hospitals",
    tags=["hospitals"],
    dependencies=[ApiKey],
    responses={**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT},
)

HOSPITAL_KINDS = ("hospital", "sub-hospital")

SHARED_DATABASE_NAME = UniqueInFamily(
    field="client_name",
    what="database name",
    key=lambda inputs: database_name(inputs["client_name"], UUID(inputs["client_uuid"])),
)
"""Sub-hospitals make their databases on their parent's SQL instance, named from their
names: two names that sanitise alike ("North Wing", "north-wing") would be one database."""


@router.post("/register", status_code=202, response_model=HospitalAccepted)
def register(body: HospitalRequest, service: Service) -> HospitalAccepted:
    """The same UUID and body again returns the same request; another body is a 409."""
    target, _ = hospital_targets(get_settings())
    accepted = service.create_client(
        kind="hospital",
        target=target,
        inputs=body.model_dump(mode="json"),
        client_id=str(body.client_uuid),
        name=body.client_name,
    )
    return HospitalAccepted.of(accepted.client, accepted.run, accepted.created)


@router.post("/{parent_uuid}/sub-hospitals/register", status_code=202, response_model=HospitalAccepted)
def register_sub_hospital(parent_uuid: UUID, body: HospitalRequest, service: Service) -> HospitalAccepted:
    """A sub-hospital shares its parent's SQL instance; it is provisioned once the parent is ready."""
    parent, _ = service.get_client(str(parent_uuid))
    if parent.kind != "hospital":
        raise Conflict(f"client {parent_uuid} is a {parent.kind}, not a hospital")
    parent.require_can_host_children()
    if body.client_uuid == parent_uuid:
        raise Conflict("a hospital cannot be its own sub-hospital")
    _, sub_target = hospital_targets(get_settings())
    accepted = service.create_client(
        kind="sub-hospital",
        target=sub_target,
        inputs={
            **body.model_dump(mode="json"),
            "parent_uuid": str(parent_uuid),
            "parent_target": parent.target,
        },
        client_id=str(body.client_uuid),
        name=body.client_name,
        parent_id=str(parent_uuid),
        unique=SHARED_DATABASE_NAME,
    )
    return HospitalAccepted.of(accepted.client, accepted.run, accepted.created)


@router.get("", response_model=ClientList)
def list_hospitals(
    service: Service,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ClientList:
    clients, total = service.list_clients(kinds=HOSPITAL_KINDS, limit=limit, offset=offset)
    return ClientList(total=total, limit=limit, offset=offset, clients=[ClientView.of(c) for c in clients])


@router.get("/{client_uuid}/status", response_model=ClientView)
def hospital_status(client_uuid: UUID, service: Service) -> ClientView:
    client, latest = service.get_client(str(client_uuid), kinds=HOSPITAL_KINDS)
    return ClientView.of(client, latest)


@router.post("/{client_uuid}/create-tables", status_code=202, response_model=Accepted)
def create_tables(client_uuid: UUID, service: Service) -> Accepted:
    accepted = service.start_operation(str(client_uuid), Operation.create_tables, kinds=HOSPITAL_KINDS)
    return Accepted.of(accepted.run, accepted.created)
