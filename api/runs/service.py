"""Rules of runs: reading them, cancelling, approving and rejecting them, and what the
dispatcher records of them (admitted, held and why, dispatched, ended). Every status
change is a method of ``Run`` that refuses an invalid one; nothing here re-checks a status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from api.clients import store as clients
from api.registry.db import Registry
from api.registry.models import InvalidTransition, Run, RunStatus
from api.runs import store
from api.runs.gate import Gate, Verdict, gate

log = logging.getLogger(__name__)


class RunService:
    def __init__(self, registry: Registry, wake: Callable[[], None] = lambda: None) -> None:
        self.registry = registry
        self.wake = wake

    # Asked through the API ---------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        with self.registry.session() as session:
            return store.get(session, run_id)

    def runs_of(self, client_id: str, *, limit: int, offset: int) -> tuple[list[Run], int]:
        """Newest first."""
        with self.registry.session() as session:
            clients.get(session, client_id)
            query = select(Run).where(Run.client_id == client_id)
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(
                query.order_by(Run.created_at.desc(), Run.id).limit(limit).offset(offset)
            ).all()
            return list(rows), total

    def cancel(self, run_id: str, reason: str) -> Run:
        """Works in every open state; the dispatcher carries it to Prefect."""
        with self.registry.session() as session:
            run = store.get(session, run_id)
            run.request_cancel(reason)
        self.wake()
        return run

    def reject(self, run_id: str) -> Run:
        with self.registry.session() as session:
            run = store.get(session, run_id)
            run.reject()
        self.wake()
        return run

    def awaiting_flow_run(self, run_id: str) -> str:
        """The flow run an approval resumes; 409 for a run not awaiting one."""
        with self.registry.session() as session:
            return store.get(session, run_id).awaiting_flow_run()

    def approve(self, run_id: str) -> Run:
        """Recorded once Prefect has resumed the flow run."""
        with self.registry.session() as session:
            run = store.get(session, run_id)
            run.resumed()
            return run

    # Recorded by the dispatcher ----------------------------------------------------------
    def accepted(self, limit: int = 200) -> list[Run]:
        """Runs not handed to Prefect yet, oldest first."""
        return self._in((RunStatus.accepted,), limit)

    def open_runs(self, limit: int = 500) -> list[Run]:
        """Runs handed to Prefect and not yet ended, oldest first."""
        return self._in((RunStatus.in_progress, RunStatus.awaiting_approval), limit)

    def admit(self, run_id: str) -> Gate | None:
        """Whether an accepted run may go to Prefect now. One that must wait is held with
        what it waits for; one that never can ends failed with why. None when the run is no
        longer accepted (ended meanwhile, which recorded its own reason)."""
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is None or run.status != RunStatus.accepted:
                return None
            verdict = gate(session, run)
            if verdict.verdict is Verdict.wait:
                run.held(verdict.reason)
            elif verdict.verdict is Verdict.refuse:
                run.end(RunStatus.failed, verdict.reason, None)
            return verdict

    def hold(self, run_id: str, reason: str) -> bool:
        return self._apply(run_id, lambda run: run.held(reason))

    def dispatched(self, run_id: str, flow_run_id: str) -> bool:
        """False when the run ended before Prefect took it (cancelled meanwhile): the caller
        must stop the flow run it created."""
        return self._apply(run_id, lambda run: run.dispatched(flow_run_id))

    def dispatch_failed(self, run_id: str, reason: str) -> bool:
        return self._apply(run_id, lambda run: run.dispatch_failed(reason))

    def awaiting_approval(self, run_id: str, message: str) -> bool:
        return self._apply(run_id, lambda run: run.waiting_for_approval(message))

    def end(
        self, run_id: str, status: RunStatus, message: str, result: dict[str, Any] | None = None
    ) -> RunStatus | None:
        """Record a terminal run and what it means for its client; a second report of the
        same end (two syncers, a restart) changes nothing and returns None."""
        return status if self._apply(run_id, lambda run: run.end(status, message, result)) else None

    def has_live_run(self, client_id: str) -> bool:
        """A run of this client Prefect is running (not waiting to be dispatched or approved)."""
        with self.registry.session() as session:
            return (
                session.scalars(
                    select(Run.id).where(Run.client_id == client_id, Run.status == RunStatus.in_progress)
                ).first()
                is not None
            )

    def _in(self, statuses: tuple[RunStatus, ...], limit: int) -> list[Run]:
        with self.registry.session() as session:
            query = select(Run).where(Run.status.in_(statuses)).order_by(Run.created_at).limit(limit)
            return list(session.scalars(query).all())

    def _apply(self, run_id: str, change: Callable[[Run], None]) -> bool:
        """One transition of one run; False (and nothing changed) when the run is gone or
        its status no longer allows it, which the run's own method decides."""
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                return False
            try:
                change(run)
            except InvalidTransition as exc:
                log.debug("run %s: %s", run_id, exc)
                return False
            return True
