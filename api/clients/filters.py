"""How GET /api/clients and POST /api/reconcile narrow the fleet."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from pydantic import BaseModel, Field
from sqlalchemy import Select

from api.clients.labels import MAX_LABELS, LabelKey, LabelValue
from api.registry.models import Client, ClientStatus
from flows.contract import DriftStatus

SWEEPABLE = (ClientStatus.ready, ClientStatus.provisioning)
"""Clients with a settled state a sweep can compare (a provisioning one is reported busy)."""


class ClientFilter(BaseModel):
    """What GET /api/clients and POST /api/reconcile narrow the fleet by."""

    status: ClientStatus | None = None
    drift: DriftStatus | None = None
    target: str | None = Field(None, max_length=64)
    parent: UUID | None = None
    include_destroyed: bool = False
    labels: list[tuple[LabelKey, LabelValue | None]] = Field(
        default_factory=list,
        max_length=MAX_LABELS,
        description="Each [key, value] a client's labels must hold; value null: the key, any value.",
    )

    def apply(
        self,
        query: Select[tuple[Client]],
        kinds: Sequence[str] | None,
        *,
        client_id: str | None = None,
        sweepable: bool = False,
    ) -> Select[tuple[Client]]:
        if kinds:
            query = query.where(Client.kind.in_(kinds))
        if self.status is not None:
            query = query.where(Client.status == self.status)
        elif not self.include_destroyed:
            query = query.where(Client.status != ClientStatus.destroyed)
        if self.drift is not None:
            query = query.where(Client.drift_status == self.drift)
        if self.target is not None:
            query = query.where(Client.target == self.target)
        if self.parent is not None:
            query = query.where(Client.parent_id == str(self.parent))
        for key, value in self.labels:
            held = Client.labels[key].as_string()
            query = query.where(held.is_not(None) if value is None else held == value)
        if client_id is not None:
            query = query.where(Client.id == client_id)
        if sweepable:
            query = query.where(Client.status.in_(SWEEPABLE))
        return query
