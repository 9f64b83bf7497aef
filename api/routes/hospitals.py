"""The hospital document's API: register hospitals and sub-hospitals, status, list,
create-tables. Registration answers at once; a flow run provisions."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from api.auth import ApiKey
from api.deps import Hospitals
from api.responses import BAD_BODY, CONFLICT, GUARDED, NOT_FOUND
from api.routes.paging import Limit, Offset
from api.schemas import Accepted, ClientList, ClientView, HospitalAccepted, HospitalRequest

router = APIRouter(
    prefix="/api/hospitals",
    tags=["hospitals"],
    dependencies=[ApiKey],
    responses={**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT},
)


@router.post("/register", status_code=202, response_model=HospitalAccepted)
def register(body: HospitalRequest, hospitals: Hospitals) -> HospitalAccepted:
    """The same UUID and body again returns the same request; another body is a 409."""
    accepted = hospitals.register(body)
    return HospitalAccepted.of(accepted.client, accepted.run, accepted.created)


@router.post("/{parent_uuid}/sub-hospitals/register", status_code=202, response_model=HospitalAccepted)
def register_sub_hospital(parent_uuid: UUID, body: HospitalRequest, hospitals: Hospitals) -> HospitalAccepted:
    """A sub-hospital shares its parent's SQL instance; it is provisioned once the parent is ready."""
    accepted = hospitals.register_sub_hospital(str(parent_uuid), body)
    return HospitalAccepted.of(accepted.client, accepted.run, accepted.created)


@router.get("", response_model=ClientList)
def list_hospitals(hospitals: Hospitals, limit: Limit = 100, offset: Offset = 0) -> ClientList:
    found, total = hospitals.list_hospitals(limit=limit, offset=offset)
    return ClientList(total=total, limit=limit, offset=offset, clients=[ClientView.of(c) for c in found])


@router.get("/{client_uuid}/status", response_model=ClientView)
def hospital_status(client_uuid: UUID, hospitals: Hospitals) -> ClientView:
    client, latest = hospitals.get_hospital(str(client_uuid))
    return ClientView.of(client, latest)


@router.post("/{client_uuid}/create-tables", status_code=202, response_model=Accepted)
def create_tables(client_uuid: UUID, hospitals: Hospitals) -> Accepted:
    accepted = hospitals.create_tables(str(client_uuid))
    return Accepted.of(accepted.run, accepted.created)
