"""Sweeps asked through the API (``POST /api/reconcile``, ``.../clients/{id}/reconcile``).

A sweep is accepted into the registry and answered at once; the dispatcher hands it to
Prefect as it hands every run, so the request never waits on Prefect. Its flow run
records each client's check in the client's drift history (``ClientService.record_sweep``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from api.registry.models import Sweep, SweepStatus
from api.service import ClientFilter, ClientService, NotFound
from flows.contract import SweepTarget


class SweepService:
    def __init__(self, clients: ClientService) -> None:
        self.clients = clients
        self.registry = clients.registry

    def accept(self, filters: ClientFilter, *, client_id: str | None = None) -> Sweep:
        """Counted now, resolved to clients when dispatched (a client may change meanwhile)."""
        _, total = self.clients.sweep_targets(filters, client_id=client_id, limit=0)
        sweep = Sweep(
            filters=filters.model_dump(mode="json", exclude_defaults=True),
            client_id=client_id,
            clients=total,
            status=SweepStatus.accepted,
            message="accepted; waiting to be handed to Prefect",
        )
        if total == 0:
            sweep.failed("no client matches: a sweep checks ready clients and clients busy with a run")
        with self.registry.session() as session:
            session.add(sweep)
            session.commit()
        self.clients.wake()
        return sweep

    def get(self, sweep_id: str) -> Sweep:
        with self.registry.session() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is None:
                raise NotFound(f"sweep {sweep_id} not found")
            return sweep

    def pending(self, limit: int = 20) -> list[Sweep]:
        with self.registry.session() as session:
            query = select(Sweep).where(Sweep.status == SweepStatus.accepted).order_by(Sweep.created_at)
            return list(session.scalars(query.limit(limit)))

    def targets(self, sweep: Sweep) -> list[SweepTarget]:
        filters = ClientFilter.model_validate(sweep.filters)
        targets, _ = self.clients.sweep_targets(filters, client_id=sweep.client_id)
        return targets

    def dispatched(self, sweep_id: str, flow_run_id: str) -> None:
        with self.registry.session() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is not None:
                sweep.dispatched(flow_run_id)
                session.commit()

    def failed(self, sweep_id: str, reason: str) -> None:
        with self.registry.session() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is not None:
                sweep.failed(reason)
                session.commit()

    @staticmethod
    def overdue(sweep: Sweep, bound: float) -> bool:
        created = sweep.created_at if sweep.created_at.tzinfo else sweep.created_at.replace(tzinfo=UTC)
        return datetime.now(UTC) - created > timedelta(seconds=bound)
