"""Rules of hospitals on top of a client's: a hospital is registered under its own UUID
(the same body again is the same registration); a sub-hospital only under a live
hospital, never itself, and never with a database name its family already uses."""

from __future__ import annotations

from uuid import UUID

from api.clients.service import ClientService, UniqueInFamily
from api.errors import Conflict
from api.registry.models import Client, Run
from api.runs.store import Accepted
from flows.clouds.hospital import HospitalInputs, database_name
from flows.contract import Operation
from flows.settings import get_settings
from flows.targets import hospital_targets

HOSPITAL_KINDS = ("hospital", "sub-hospital")

SHARED_DATABASE_NAME = UniqueInFamily(
    field="client_name",
    what="database name",
    key=lambda inputs: database_name(inputs["client_name"], UUID(inputs["client_uuid"])),
)
"""Sub-hospitals make their databases on their parent's SQL instance, named from their
names: two names that sanitise alike ("North Wing", "north-wing") would be one database."""


class HospitalService:
    def __init__(self, clients: ClientService) -> None:
        self.clients = clients

    def register(self, hospital: HospitalInputs) -> Accepted:
        """``hospital`` may carry the client's ``labels`` (the request model's), never inputs."""
        target, _ = hospital_targets(get_settings())
        return self.clients.create_client(
            kind="hospital",
            target=target,
            inputs=hospital.model_dump(mode="json", exclude={"labels"}),
            client_id=str(hospital.client_uuid),
            name=hospital.client_name,
            labels=getattr(hospital, "labels", None),
        )

    def register_sub_hospital(self, parent_id: str, hospital: HospitalInputs) -> Accepted:
        """Provisioned once the parent is ready (the dispatcher holds it until then)."""
        parent, _ = self.clients.get_client(parent_id)
        if parent.kind != "hospital":
            raise Conflict(f"client {parent_id} is a {parent.kind}, not a hospital")
        parent.require_can_host_children()
        if str(hospital.client_uuid) == parent_id:
            raise Conflict("a hospital cannot be its own sub-hospital")
        _, sub_target = hospital_targets(get_settings())
        return self.clients.create_client(
            kind="sub-hospital",
            target=sub_target,
            inputs={
                **hospital.model_dump(mode="json", exclude={"labels"}),
                "parent_uuid": parent_id,
                "parent_target": parent.target,
            },
            client_id=str(hospital.client_uuid),
            name=hospital.client_name,
            parent_id=parent_id,
            unique=SHARED_DATABASE_NAME,
            labels=getattr(hospital, "labels", None),
        )

    def list_hospitals(self, *, limit: int, offset: int) -> tuple[list[Client], int]:
        return self.clients.list_clients(kinds=HOSPITAL_KINDS, limit=limit, offset=offset)

    def get_hospital(self, client_id: str) -> tuple[Client, Run | None]:
        return self.clients.get_client(client_id, kinds=HOSPITAL_KINDS)

    def create_tables(self, client_id: str) -> Accepted:
        return self.clients.start_operation(client_id, Operation.create_tables, kinds=HOSPITAL_KINDS)
