"""Rules of sweeps asked through the API (``POST /api/reconcile``, ``.../clients/{id}/reconcile``)
and of the drift they record.

A sweep is accepted into the registry and answered at once; the dispatcher hands it to
Prefect as it hands every run, so the request never waits on Prefect. Its flow run's
checks land in each client's drift status and history (``record``), once per flow run,
whether the sweep was asked here or started by Prefect's schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.clients import store as clients
from api.clients.filters import SWEEPABLE, ClientFilter
from api.clients.service import ClientService
from api.errors import Conflict, NotFound
from api.registry.models import Client, DriftRecord, Sweep, SweepStatus
from flows.contract import FlowParameters, Remediation, SweepResult, SweepTarget


class SweepService:
    def __init__(self, clients: ClientService, wake: Callable[[], None] = lambda: None) -> None:
        self.clients = clients
        self.registry = clients.registry
        self.wake = wake

    # Accepting ---------------------------------------------------------------------------
    def accept(self, filters: ClientFilter, *, client_id: str | None = None) -> Sweep:
        """Counted now, resolved to clients when dispatched (a client may change meanwhile)."""
        _, total = self.fleet(filters, client_id=client_id, limit=0)
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
        self.wake()
        return sweep

    def accept_for_client(self, client_id: str) -> Sweep:
        """A sweep of one client; refused unless it is ready (or busy with a run)."""
        client, _ = self.clients.get_client(client_id)
        _, matching = self.fleet(ClientFilter(), client_id=client.id, limit=0)
        if not matching:
            raise Conflict(f"client {client.id} is {client.status}: there is no settled state to check")
        return self.accept(ClientFilter(), client_id=client.id)

    # Reading -----------------------------------------------------------------------------
    def get(self, sweep_id: str) -> Sweep:
        with self.registry.session() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is None:
                raise NotFound(f"sweep {sweep_id} not found")
            return sweep

    def fleet(
        self, filters: ClientFilter, *, client_id: str | None = None, limit: int = 10_000, offset: int = 0
    ) -> tuple[list[SweepTarget], int]:
        """Clients a sweep plans, as their last accepted inputs: ready ones, and ones busy with
        a run (their check is skipped and says so). A pending, failed or destroyed client has
        no settled state to compare."""
        if filters.status is not None and filters.status not in SWEEPABLE:
            return [], 0
        found, total = self.clients.list_clients(
            filters=filters, client_id=client_id, sweepable=True, limit=limit, offset=offset
        )
        return [
            SweepTarget(
                params=FlowParameters(
                    run_id=f"sweep-{c.id}",
                    client_id=c.id,
                    target=c.target,
                    inputs=c.inputs,
                    labels=c.labels or {},
                    revision=c.revision or "",
                ),
                remediation=Remediation(c.remediation),
            )
            for c in found
        ], total

    def drift_of(self, client_id: str, history: int = 20) -> tuple[Client, list[DriftRecord]]:
        with self.registry.session() as session:
            client = clients.get(session, client_id)
            records = session.scalars(
                select(DriftRecord)
                .where(DriftRecord.client_id == client_id)
                .order_by(DriftRecord.checked_at.desc(), DriftRecord.id.desc())
                .limit(history)
            ).all()
            return client, list(records)

    # Recorded by the dispatcher ----------------------------------------------------------
    def pending(self, limit: int = 20) -> list[Sweep]:
        with self.registry.session() as session:
            query = select(Sweep).where(Sweep.status == SweepStatus.accepted).order_by(Sweep.created_at)
            return list(session.scalars(query.limit(limit)))

    def targets(self, sweep: Sweep) -> list[SweepTarget]:
        filters = ClientFilter.model_validate(sweep.filters)
        targets, _ = self.fleet(filters, client_id=sweep.client_id)
        return targets

    def dispatched(self, sweep_id: str, flow_run_id: str) -> None:
        with self.registry.session() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is not None:
                sweep.dispatched(flow_run_id)

    def waiting(self, sweep_id: str, reason: str) -> None:
        """Still accepted; ``reason`` says for what it waits."""
        with self.registry.session() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is not None and sweep.status == SweepStatus.accepted:
                sweep.message = reason

    def failed(self, sweep_id: str, reason: str) -> None:
        with self.registry.session() as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is not None:
                sweep.failed(reason)

    @staticmethod
    def overdue(sweep: Sweep, bound: float) -> bool:
        created = sweep.created_at if sweep.created_at.tzinfo else sweep.created_at.replace(tzinfo=UTC)
        return datetime.now(UTC) - created > timedelta(seconds=bound)

    def recorded(self, flow_run_id: str) -> bool:
        with self.registry.session() as session:
            return _recorded(session, flow_run_id)

    def record(self, flow_run_id: str, sweep: SweepResult) -> int:
        """Each check into the client's drift status and history, once per sweep."""
        recorded = 0
        with self.registry.session() as session:
            if _recorded(session, flow_run_id):
                return 0
            for check in sweep.checks:
                client = session.get(Client, check.client_id)
                if client is None:
                    continue
                client.record_check(check)
                session.add(
                    DriftRecord(
                        client_id=client.id,
                        checked_at=check.checked_at,
                        status=check.status,
                        action=check.action,
                        reason=check.reason,
                        resources=[r.model_dump() for r in check.resources],
                        flow_run_id=flow_run_id,
                    )
                )
                recorded += 1
        return recorded


def _recorded(session: Session, flow_run_id: str) -> bool:
    found = session.scalars(select(DriftRecord.id).where(DriftRecord.flow_run_id == flow_run_id))
    return found.first() is not None
