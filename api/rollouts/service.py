"""Rules of rollouts: accepting one, choosing each wave's clients, recording what their
plans showed and which run upgraded them, the verdict on each wave, and pause, resume,
abort and rollback.

The ``rollout`` flow asks for each of these over HTTP; everything it learns lands here
first, so a flow run that dies leaves a record another carries on from. A client's upgrade
is its normal provision run (same lock, history, approval, callbacks); its step is read
back from that run (``settle``), whichever process ends it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.clients.service import ClientService
from api.errors import Conflict, InvalidInput, NotFound
from api.registry.models import Client, ClientStatus, InvalidTransition, Run, RunStatus, utcnow
from api.registry.rollouts import Rollout, RolloutClient
from flows.contract import FlowParameters, RolloutHint
from flows.rollouts.contract import (
    ClientStep,
    PlanOutcome,
    RolloutSpec,
    RolloutStatus,
    RolloutTarget,
    WaveEnd,
    WaveStart,
)
from flows.settings import Settings
from flows.targets import get_target
from flows.terraform.revisions import UnknownRevision, revision_store

OPEN = [s.value for s in RolloutStatus if s.open]
ROLLBACK_ALLOWS = ("create", "update", "delete")
"""A rollback removes what the newer revision added: deletes are expected, replaces not."""


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput([{"loc": ["body", field], "msg": message, "type": "value_error"}])


class RolloutService:
    def __init__(
        self, clients: ClientService, settings: Settings, wake: Callable[[], None] = lambda: None
    ) -> None:
        self.clients = clients
        self.registry = clients.registry
        self.settings = settings
        self.wake = wake

    # Accepting ---------------------------------------------------------------------------
    def accept(self, spec: RolloutSpec, *, by: str | None = None) -> Rollout:
        try:
            target = get_target(spec.target)
        except KeyError:
            raise _invalid(
                "target", f"no target {spec.target!r} in the catalogue (GET /api/targets)"
            ) from None
        try:
            revision_store(self.settings).get(target.module, spec.revision)
        except UnknownRevision as exc:
            raise _invalid("revision", str(exc)) from None
        rollout = Rollout(target=spec.target, revision=spec.revision, spec=spec.model_dump(mode="json"))
        rollout.created_by = by
        rollout.message = "accepted; waiting to be handed to Prefect"
        return self._open(rollout)

    def rollback(self, rollout_id: str, *, by: str | None = None) -> Rollout:
        """A rollout back to each upgraded client's previous revision, wave for wave, with
        no manual gate (undoing is not staged twice) and deletes allowed."""
        with self.registry.session() as session:
            source = self._get(session, rollout_id)
            if source.state.open:
                raise Conflict(
                    f"rollout {source.id} is {source.status}: pause it and abort it before rolling it back"
                )
            spec = source.parsed
            waves = []
            for index, wave in enumerate(spec.waves):
                ids = [
                    c.client_id for c in source.clients if c.wave == index and c.step == ClientStep.applied
                ]
                if ids:
                    waves.append(
                        wave.model_copy(
                            update={
                                "clients": ids,
                                "labels": {},
                                "count": None,
                                "percent": None,
                                "gate": "auto",
                            }
                        )
                    )
            if not waves:
                raise Conflict(f"rollout {source.id} upgraded no client: there is nothing to roll back")
            back = spec.model_copy(update={"waves": waves, "allow": list(ROLLBACK_ALLOWS)})
        rollout = Rollout(target=spec.target, revision=None, spec=back.model_dump(mode="json"))
        rollout.rollback_of, rollout.created_by = rollout_id, by
        rollout.message = f"rollback of rollout {rollout_id}; waiting to be handed to Prefect"
        return self._open(rollout)

    def _open(self, rollout: Rollout) -> Rollout:
        with self.registry.session() as session:
            self._require_target_free(session, rollout.target, rollout.id)
            session.add(rollout)
        self.wake()
        return self.get(rollout.id)

    @staticmethod
    def _require_target_free(session: Session, target: str, rollout_id: str | None) -> None:
        query = select(Rollout.id, Rollout.status).where(Rollout.target == target, Rollout.status.in_(OPEN))
        for other, status in session.execute(query):
            if other != rollout_id:
                raise Conflict(
                    f"rollout {other} of target {target} is {status}: one rollout of a target at a time "
                    "(abort it, or wait for it to end)"
                )

    # Reading -----------------------------------------------------------------------------
    def get(self, rollout_id: str) -> Rollout:
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            self._settle(session, rollout)
            rollout.clients  # noqa: B018  (loaded before the session ends)
            return rollout

    def find(
        self, *, target: str | None, status: RolloutStatus | None, limit: int, offset: int
    ) -> tuple[list[Rollout], int]:
        with self.registry.session() as session:
            query = select(Rollout)
            if target is not None:
                query = query.where(Rollout.target == target)
            if status is not None:
                query = query.where(Rollout.status == status)
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            found = list(
                session.scalars(query.order_by(Rollout.created_at.desc()).limit(limit).offset(offset))
            )
            return found, total

    @staticmethod
    def _get(session: Session, rollout_id: str) -> Rollout:
        rollout = session.get(Rollout, rollout_id, with_for_update=True)
        if rollout is None:
            raise NotFound(f"rollout {rollout_id} not found")
        return rollout

    @staticmethod
    def _settle(session: Session, rollout: Rollout) -> None:
        """Each open upgrade run's end, read into its client's step."""
        for row in rollout.clients:
            if row.step != ClientStep.applying or row.run_id is None:
                continue
            run = session.get(Run, row.run_id)
            if run is None or not RunStatus(run.status).terminal:
                continue
            if run.status == RunStatus.completed:
                row.to(ClientStep.applied, "")
            else:
                row.to(ClientStep.failed, f"upgrade run {run.id} {run.status}: {run.message}")

    # The flow's calls --------------------------------------------------------------------
    def start_wave(self, rollout_id: str, wave: int) -> WaveStart:
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            spec = rollout.parsed
            stop = self._stop_reason(rollout, wave, len(spec.waves))
            if stop:
                if rollout.pause_requested and rollout.state is RolloutStatus.running:
                    rollout.pause_requested = False
                    rollout.move(
                        RolloutStatus.paused, f"paused before wave {wave + 1}: POST .../resume goes on"
                    )
                return self._wave_start(rollout, wave, [], go=False, reason=stop or rollout.message)
            if rollout.state is RolloutStatus.accepted:
                rollout.move(RolloutStatus.running, f"wave {wave + 1} of {len(spec.waves)}")
            rows = [r for r in rollout.clients if r.wave == wave]
            if rows:
                for row in rows:  # a resumed wave plans its held clients again
                    if row.step == ClientStep.held:
                        row.to(ClientStep.pending, "")
            else:
                rows = self._choose(session, rollout, wave)
            rollout.message = f"wave {wave + 1} of {len(spec.waves)}: {len(rows)} client(s)"
            clients = {
                c.id: c
                for c in session.scalars(select(Client).where(Client.id.in_([r.client_id for r in rows])))
            }
            targets = [self._target(rollout, row, clients.get(row.client_id)) for row in rows]
            return self._wave_start(rollout, wave, targets, go=True)

    def _stop_reason(self, rollout: Rollout, wave: int, waves: int) -> str:
        if rollout.state not in (RolloutStatus.accepted, RolloutStatus.running):
            return f"rollout is {rollout.status}: {rollout.message}"
        if rollout.pause_requested:
            return "a pause was asked"
        if wave != rollout.current_wave or wave >= waves:
            return f"wave {wave + 1} is not the rollout's current one ({rollout.current_wave + 1})"
        return ""

    def _wave_start(
        self, rollout: Rollout, wave: int, targets: list[RolloutTarget], *, go: bool, reason: str = ""
    ) -> WaveStart:
        spec = rollout.parsed
        index = min(wave, len(spec.waves) - 1)
        return WaveStart(
            wave=wave,
            name=spec.waves[index].name,
            clients=targets,
            max_parallel=spec.waves[index].max_parallel or self.settings.fleet_concurrency,
            allow=list(spec.allow),
            busy_wait_seconds=spec.busy_wait_seconds,
            go=go,
            reason=reason,
        )

    def _choose(self, session: Session, rollout: Rollout, wave: int) -> list[RolloutClient]:
        """The wave's clients, from the target's ready ones no earlier wave took that are
        not already on the revision they would move to, oldest first."""
        spec_wave = rollout.parsed.waves[wave]
        taken = {r.client_id for r in rollout.clients}
        back = self._rollback_revisions(session, rollout)
        query = select(Client).where(Client.target == rollout.target, Client.status == ClientStatus.ready)
        if spec_wave.clients is not None:
            query = query.where(Client.id.in_(spec_wave.clients))
        left = []
        for client in session.scalars(query.order_by(Client.created_at, Client.id)):
            destination = back.get(client.id) if rollout.rollback_of else rollout.revision
            if client.id in taken or destination is None or client.revision == destination:
                continue
            if all((client.labels or {}).get(k) == v for k, v in spec_wave.labels.items()):
                left.append((client, destination))
        rows = []
        for client, destination in left[: spec_wave.size_of(len(left))]:
            row = RolloutClient(
                wave=wave, client_id=client.id, from_revision=client.revision, to_revision=destination
            )
            rollout.clients.append(row)
            rows.append(row)
        session.flush()
        return rows

    @staticmethod
    def _rollback_revisions(session: Session, rollout: Rollout) -> dict[str, str]:
        if not rollout.rollback_of:
            return {}
        query = select(RolloutClient).where(
            RolloutClient.rollout_id == rollout.rollback_of, RolloutClient.step == ClientStep.applied
        )
        return {r.client_id: r.from_revision for r in session.scalars(query) if r.from_revision}

    @staticmethod
    def _hint(rollout: Rollout) -> RolloutHint:
        return RolloutHint(rollout_id=rollout.id, allowed_actions=list(rollout.parsed.allow))

    def _target(self, rollout: Rollout, row: RolloutClient, client: Client | None) -> RolloutTarget:
        params = FlowParameters(
            run_id=f"rollout-{rollout.id}",
            client_id=row.client_id,
            target=rollout.target,
            inputs=client.inputs if client else {},
            labels=(client.labels or {}) if client else {},
            revision=row.to_revision,
            rollout=self._hint(rollout),
        )
        return RolloutTarget(params=params, step=ClientStep(row.step), from_revision=row.from_revision)

    def record_plan(self, rollout_id: str, client_id: str, outcome: PlanOutcome) -> RolloutClient:
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            row = self._row(rollout, client_id)
            if row.step != ClientStep.pending:
                return row  # settled meanwhile (aborted): the later word stands
            row.changes = [c.model_dump() for c in outcome.changes]
            row.planned_at = utcnow()
            row.to(ClientStep(outcome.step), outcome.reason)
            return row

    def upgrade(self, rollout_id: str, client_id: str) -> RolloutClient:
        """The client's upgrade run, unless the rollout no longer runs (the client is held
        for a resume, or skipped when aborted)."""
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            row = self._row(rollout, client_id)
            if row.step != ClientStep.planned:
                return row
            if rollout.state is not RolloutStatus.running or rollout.pause_requested:
                row.to(
                    ClientStep.held,
                    f"not started: the rollout is {'pausing' if rollout.pause_requested else rollout.status}",
                )
                return row
            to_revision, hint = row.to_revision, self._hint(rollout)
        try:
            accepted = self.clients.upgrade(client_id, to_revision, rollout=hint)
        except (InvalidTransition, Conflict, NotFound, InvalidInput) as exc:
            return self._mark(rollout_id, client_id, ClientStep.skipped, f"not upgraded: {exc}")
        with self.registry.session() as session:
            row = self._row(self._get(session, rollout_id), client_id)
            row.run_id, row.started_at = accepted.run.id, utcnow()
            row.to(ClientStep.applying, "")
            return row

    def _mark(self, rollout_id: str, client_id: str, step: ClientStep, reason: str) -> RolloutClient:
        with self.registry.session() as session:
            row = self._row(self._get(session, rollout_id), client_id)
            row.to(step, reason)
            return row

    @staticmethod
    def _row(rollout: Rollout, client_id: str) -> RolloutClient:
        for row in rollout.clients:
            if row.client_id == client_id:
                return row
        raise NotFound(f"client {client_id} is not in rollout {rollout.id}")

    def end_wave(self, rollout_id: str, wave: int) -> WaveEnd:
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            self._settle(session, rollout)
            spec = rollout.parsed
            if rollout.state is not RolloutStatus.running or wave != rollout.current_wave:
                return WaveEnd(status=rollout.state, message=rollout.message, next_wave=None)
            rows = [r for r in rollout.clients if r.wave == wave]
            for row in rows:
                if not ClientStep(row.step).settled and row.step != ClientStep.applying:
                    row.to(ClientStep.held, "not upgraded before the wave ended; resume plans it again")
            failed = sum(r.step == ClientStep.failed for r in rows)
            label = f"wave {wave + 1} ({spec.waves[wave].name or 'unnamed'})"
            applied = sum(r.step == ClientStep.applied for r in rows)
            if not spec.waves[wave].failure_tolerance.allows(failed, len(rows)):
                untouched = (
                    f"; waves {wave + 2}-{len(spec.waves)} untouched" if wave + 1 < len(spec.waves) else ""
                )
                rollout.move(
                    RolloutStatus.halted,
                    f"{label}: {failed} of {len(rows)} client(s) failed, past its tolerance: "
                    f"halted{untouched}. Failed clients stay on their old revision; POST .../resume "
                    "goes on, .../rollback undoes, .../abort ends",
                )
            elif any(r.step == ClientStep.held for r in rows):
                rollout.pause_requested = False
                rollout.move(
                    RolloutStatus.paused, f"{label} paused with clients held: POST .../resume goes on"
                )
            elif wave + 1 >= len(spec.waves):
                rollout.move(
                    RolloutStatus.completed,
                    f"all {len(spec.waves)} wave(s) done; {label}: {applied} upgraded",
                )
            else:
                rollout.current_wave = wave + 1
                done = f"{label} done: {applied} upgraded, {failed} failed"
                if spec.waves[wave].gate == "manual" or rollout.pause_requested:
                    rollout.pause_requested = False
                    why = "manual gate" if spec.waves[wave].gate == "manual" else "a pause was asked"
                    rollout.move(
                        RolloutStatus.paused, f"{done}; {why}: POST .../resume starts wave {wave + 2}"
                    )
                else:
                    rollout.message = f"{done}; wave {wave + 2} next"
            next_wave = rollout.current_wave if rollout.state is RolloutStatus.running else None
            return WaveEnd(
                status=rollout.state,
                message=rollout.message,
                next_wave=next_wave,
                pause_seconds=spec.pause_between_waves_seconds if next_wave is not None else 0,
            )

    # A person's calls --------------------------------------------------------------------
    def pause(self, rollout_id: str) -> Rollout:
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            if rollout.state is RolloutStatus.accepted:
                rollout.dispatch = False
                rollout.move(RolloutStatus.paused, "paused before it started: POST .../resume starts it")
            elif rollout.state is RolloutStatus.running:
                rollout.pause_requested = True
                rollout.message = f"{rollout.message}; pausing: open upgrades finish, no new one starts"
            elif rollout.state is not RolloutStatus.paused:
                raise Conflict(f"rollout {rollout.id} is {rollout.status}: only a running rollout pauses")
        return self.get(rollout_id)

    def resume(self, rollout_id: str) -> Rollout:
        """A new leg (its own flow run) from where the record says the rollout is."""
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            if rollout.state not in (RolloutStatus.paused, RolloutStatus.halted):
                raise Conflict(
                    f"rollout {rollout.id} is {rollout.status}: only a paused or halted one resumes"
                )
            self._require_target_free(session, rollout.target, rollout.id)
            for row in rollout.clients:
                if row.step == ClientStep.held:
                    row.to(ClientStep.pending, "")
            rollout.pause_requested = False
            rollout.attempt += 1
            rollout.dispatch, rollout.flow_run_id = True, None
            rollout.move(
                RolloutStatus.accepted, f"resumed at wave {rollout.current_wave + 1}; waiting for Prefect"
            )
        self.wake()
        return self.get(rollout_id)

    def abort(self, rollout_id: str, reason: str = "aborted through the API") -> Rollout:
        """Ends the rollout; clients not yet upgrading are skipped, open upgrade runs end
        as normal runs do (their steps still land here)."""
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            if rollout.state.terminal:
                raise Conflict(f"rollout {rollout.id} is already {rollout.status}")
            for row in rollout.clients:
                if row.step in (ClientStep.pending, ClientStep.planned, ClientStep.held):
                    row.to(ClientStep.skipped, f"rollout aborted: {reason}")
            rollout.dispatch = False
            rollout.move(RolloutStatus.aborted, reason)
        return self.get(rollout_id)

    # The dispatcher's calls --------------------------------------------------------------
    def owed(self) -> list[Rollout]:
        """Rollouts owed a flow run."""
        with self.registry.session() as session:
            query = select(Rollout).where(Rollout.dispatch.is_(True), Rollout.status.in_(OPEN))
            return list(session.scalars(query.order_by(Rollout.created_at).limit(20)))

    def dispatched(self, rollout_id: str, flow_run_id: str) -> None:
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            rollout.flow_run_id, rollout.dispatch = flow_run_id, False

    def running(self) -> list[Rollout]:
        """Rollouts whose flow run should be alive."""
        with self.registry.session() as session:
            query = select(Rollout).where(
                Rollout.status.in_([RolloutStatus.accepted, RolloutStatus.running]),
                Rollout.dispatch.is_(False),
                Rollout.flow_run_id.is_not(None),
            )
            return list(session.scalars(query))

    def flow_run_ended(self, rollout_id: str, flow_run_id: str, how: str) -> None:
        """The rollout's flow run ended while the rollout ran: it halts, resumable, with no
        client left mid-step (open upgrade runs settle as their runs end)."""
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            if rollout.flow_run_id != flow_run_id or rollout.state not in (
                RolloutStatus.accepted,
                RolloutStatus.running,
            ):
                return
            self._settle(session, rollout)
            for row in rollout.clients:
                if row.step in (ClientStep.pending, ClientStep.planned):
                    row.to(ClientStep.held, f"the rollout's flow run {how}; resume plans it again")
            rollout.pause_requested = False
            rollout.move(
                RolloutStatus.halted,
                f"the rollout's flow run {flow_run_id} {how} during wave {rollout.current_wave + 1}: "
                "POST .../resume carries it on, .../abort ends it",
            )

    def overdue(self, rollout: Rollout, bound: float) -> bool:
        created = rollout.updated_at if rollout.updated_at.tzinfo else rollout.updated_at.replace(tzinfo=UTC)
        return datetime.now(UTC) - created > timedelta(seconds=bound)

    def dispatch_failed(self, rollout_id: str, reason: str) -> None:
        with self.registry.session() as session:
            rollout = self._get(session, rollout_id)
            rollout.dispatch = False
            rollout.move(RolloutStatus.halted, f"Prefect did not take the rollout: {reason}; POST .../resume")


def as_dict(row: RolloutClient) -> dict[str, Any]:
    return {
        "client_id": row.client_id,
        "step": row.step,
        "from_revision": row.from_revision,
        "to_revision": row.to_revision,
        "reason": row.reason,
        "changes": row.changes or [],
        "run_id": row.run_id,
        "planned_at": row.planned_at,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
    }
