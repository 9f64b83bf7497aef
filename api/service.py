"""Business rules of the gateway: accepting requests (idempotently), and what a finished
run means for its client. Routes parse and delegate here; the dispatcher calls
``finish`` when Prefect reports a terminal state."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Select, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.keys import caller_name
from api.merge_patch import merge_patch, value_at
from api.registry.db import Registry
from api.registry.models import (
    OPEN_RUN,
    Approval,
    Client,
    ClientStatus,
    DriftRecord,
    Run,
    RunStatus,
    new_id,
)
from flows.contract import DriftStatus, FlowParameters, Operation, Remediation, SweepResult, SweepTarget
from flows.targets import get_target


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


class InvalidInput(Exception):
    """Inputs a target rejects; ``errors`` are shaped like FastAPI's 422 ``detail``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class UniqueInFamily:
    """A value a sub-client must not share with its parent or its live siblings: what they
    hold in one namespace (a sub-hospital's database on its parent's SQL instance).
    ``key`` reads it from a client's inputs; ``field`` is the request field it comes from."""

    field: str
    what: str
    key: Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Accepted:
    run: Run
    client: Client
    created: bool


def _frozen_error(path: str) -> dict[str, Any]:
    return {"loc": ["body", *path.split(".")], "msg": f"{path} cannot change once created", "type": "frozen"}


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


SWEEPABLE = (ClientStatus.ready, ClientStatus.provisioning)


class ClientFilter(BaseModel):
    """What GET /api/clients and POST /api/reconcile narrow the fleet by."""

    status: ClientStatus | None = None
    drift: DriftStatus | None = None
    target: str | None = Field(None, max_length=64)
    parent: UUID | None = None
    include_destroyed: bool = False

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
        if client_id is not None:
            query = query.where(Client.id == client_id)
        if sweepable:
            query = query.where(Client.status.in_(SWEEPABLE))
        return query


class ClientService:
    def __init__(self, registry: Registry, wake: Callable[[], None] = lambda: None) -> None:
        self.registry = registry
        self.wake = wake

    # Accepting ---------------------------------------------------------------------------
    def create_client(
        self,
        *,
        kind: str,
        target: str,
        inputs: dict[str, Any],
        client_id: str | None = None,
        name: str | None = None,
        parent_id: str | None = None,
        idempotency_key: str | None = None,
        unique: UniqueInFamily | None = None,
    ) -> Accepted:
        """A new client and its first provision run, in one transaction.

        With a given ``client_id`` (hospitals) the same body again returns the same
        request and another body is a conflict; so does an ``Idempotency-Key``. With
        ``unique``, a sub-client whose value clashes with its parent's or a live sibling's
        is a conflict naming the field.
        """
        body_print = fingerprint({"kind": kind, "target": target, "inputs": inputs, "parent": parent_id})
        if idempotency_key and (same := self._by_idempotency_key(idempotency_key, body_print)):
            return same
        if client_id or parent_id:
            with self.registry.session() as session:
                if client_id and (existing := session.get(Client, client_id)):
                    return self._same_client(session, existing, body_print)
                if parent_id and session.get(Client, parent_id) is None:
                    raise NotFound(f"parent client {parent_id} not found")
        cid = client_id or new_id()
        try:
            with self.registry.session() as session:
                if parent_id and unique is not None:
                    self._require_unique_in_family(session, parent_id, cid, inputs, unique)
                client = Client(
                    id=cid,
                    kind=kind,
                    target=target,
                    name=name,
                    parent_id=parent_id,
                    inputs=inputs,
                    fingerprint=body_print,
                    status=ClientStatus.pending,
                )
                session.add(client)
                run = self._new_run(session, client, Operation.provision, idempotency_key, body_print)
        except IntegrityError:
            # A concurrent identical request won the race: answer with its run.
            if idempotency_key and (same := self._by_idempotency_key(idempotency_key, body_print)):
                return same
            with self.registry.session() as session:
                if client_id and (existing := session.get(Client, client_id)):
                    return self._same_client(session, existing, body_print)
            raise
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def start_operation(
        self,
        client_id: str,
        operation: Operation,
        *,
        cascade: bool = False,
        idempotency_key: str | None = None,
        kinds: Sequence[str] | None = None,
    ) -> Accepted:
        """destroy, plan, create-tables... on an existing client (of one of ``kinds``)."""
        op_print = fingerprint({"client": client_id, "operation": operation.value, "cascade": cascade})
        if idempotency_key and (same := self._by_idempotency_key(idempotency_key, op_print)):
            return same
        with self.registry.session() as session:
            client = self._locked_client(session, client_id, kinds)
            client.require_live()
            if operation is not Operation.destroy:
                self._require_not_destroying(session, client_id)
            if operation is Operation.create_tables:
                client.require_ready(operation.value)
            if operation is Operation.destroy:
                live = [c for c in self._children(session, client_id) if c.status != ClientStatus.destroyed]
                if live and not cascade:
                    names = ", ".join(c.id for c in live)
                    raise Conflict(
                        f"client {client_id} still has {len(live)} sub-client(s) ({names}); "
                        "delete them first or pass cascade=true"
                    )
                for child in live:
                    if not (destroy := self._open_run(session, child.id, Operation.destroy)):
                        destroy = self._new_run(session, child, Operation.destroy, None, op_print)
                    self._drop_awaiting(session, child.id, destroy)
            if pending := self._open_run(session, client_id, operation):
                return Accepted(run=pending, client=client, created=False)
            run = self._new_run(session, client, operation, idempotency_key, op_print)
            if operation is Operation.destroy:
                self._drop_awaiting(session, client_id, run)
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def update_client(
        self, client_id: str, patch: dict[str, Any], *, approval: Approval | None = None
    ) -> Accepted | None:
        """Merge ``patch`` into the client's inputs (RFC 7396), validate the result with the
        target's own model, and start a provision that applies the difference. None when
        the patch changes nothing."""
        with self.registry.session() as session:
            client = self._locked_client(session, client_id)
            client.require_live()
            self._require_not_destroying(session, client_id)
            target = get_target(client.target)
            merged = merge_patch(client.inputs, patch)
            frozen = [p for p in target.immutable if value_at(merged, p) != value_at(client.inputs, p)]
            if frozen:
                raise InvalidInput([_frozen_error(p) for p in frozen])
            try:
                inputs = target.parse_inputs(merged).model_dump(mode="json")
            except ValidationError as exc:
                raise InvalidInput(
                    [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
                ) from None
            if inputs == target.parse_inputs(client.inputs).model_dump(mode="json"):
                return None
            client.inputs = inputs
            body_print = fingerprint({"client": client_id, "patch": patch, "inputs": inputs})
            run = self._new_run(session, client, Operation.provision, None, body_print, approval=approval)
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def retry(self, client_id: str, *, approval: Approval | None = None) -> Accepted:
        """The client's last run again, same operation and inputs, when it failed."""
        with self.registry.session() as session:
            client = self._locked_client(session, client_id)
            client.require_live()
            self._require_not_destroying(session, client_id)
            last = self._latest(session, client_id)
            if last is None or last.status not in (RunStatus.failed, RunStatus.cancelled):
                state = "has no run" if last is None else f"last run {last.id} is {last.status}"
                raise Conflict(f"client {client_id} {state}; only a failed or cancelled run is retried")
            inputs = self.parameters(last).inputs
            run = self._new_run(
                session, client, Operation(last.operation), None, last.fingerprint, inputs, approval
            )
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def configure(
        self,
        client_id: str,
        *,
        approval: Approval | None = None,
        remediation: Remediation | None = None,
        callback_url: str | None = None,
        set_callback: bool = False,
    ) -> Client:
        with self.registry.session() as session:
            client = self._client(session, client_id)
            client.require_live()
            if approval is not None:
                client.approval = approval
            if remediation is not None:
                client.remediation = remediation
            if set_callback:
                client.callback_url = callback_url
            return client

    def cancel(self, run_id: str, reason: str) -> Run:
        """Works in every open state; the dispatcher carries it to Prefect."""
        with self.registry.session() as session:
            run = self._run(session, run_id)
            run.request_cancel(reason)
        self.wake()
        return run

    def awaiting_approval_flow_run(self, run_id: str) -> str:
        """The flow run of a run awaiting approval; 409 for any other run."""
        with self.registry.session() as session:
            run = self._run(session, run_id)
            if run.status != RunStatus.awaiting_approval or run.flow_run_id is None:
                raise Conflict(f"run {run_id} is {run.status}, not awaiting approval")
            return run.flow_run_id

    def approve(self, run_id: str) -> Run:
        with self.registry.session() as session:
            run = self._run(session, run_id)
            run.resumed()
            return run

    # Reading -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        with self.registry.session() as session:
            return self._run(session, run_id)

    def runs_of(self, client_id: str, *, limit: int, offset: int) -> tuple[list[Run], int]:
        """Newest first."""
        with self.registry.session() as session:
            self._client(session, client_id)
            query = select(Run).where(Run.client_id == client_id)
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(
                query.order_by(Run.created_at.desc(), Run.id).limit(limit).offset(offset)
            ).all()
            return list(rows), total

    def get_client(self, client_id: str, kinds: Sequence[str] | None = None) -> tuple[Client, Run | None]:
        with self.registry.session() as session:
            client = self._client(session, client_id, kinds)
            return client, self._latest(session, client_id)

    def list_clients(
        self,
        *,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        filters: ClientFilter | None = None,
        client_id: str | None = None,
        sweepable: bool = False,
    ) -> tuple[list[Client], int]:
        query = (filters or ClientFilter()).apply(
            select(Client), kinds, client_id=client_id, sweepable=sweepable
        )
        with self.registry.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            ordered = query.order_by(Client.created_at, Client.id)
            rows = session.scalars(ordered.limit(limit).offset(offset)).all()
            return list(rows), total

    # Reconciliation ----------------------------------------------------------------------
    def sweep_targets(
        self, filters: ClientFilter, *, client_id: str | None = None, limit: int = 10_000, offset: int = 0
    ) -> tuple[list[SweepTarget], int]:
        """Clients a sweep plans, as their last accepted inputs: ready ones, and ones busy with
        a run (their check is skipped and says so). A pending, failed or destroyed client has
        no settled state to compare."""
        if filters.status is not None and filters.status not in SWEEPABLE:
            return [], 0
        clients, total = self.list_clients(
            filters=filters, client_id=client_id, sweepable=True, limit=limit, offset=offset
        )
        return [
            SweepTarget(
                params=FlowParameters(
                    run_id=f"sweep-{c.id}", client_id=c.id, target=c.target, inputs=c.inputs
                ),
                remediation=Remediation(c.remediation),
            )
            for c in clients
        ], total

    def sweep_recorded(self, flow_run_id: str) -> bool:
        with self.registry.session() as session:
            found = session.scalars(select(DriftRecord.id).where(DriftRecord.flow_run_id == flow_run_id))
            return found.first() is not None

    def record_sweep(self, flow_run_id: str, sweep: SweepResult) -> int:
        """Each check into the client's drift status and history, once per sweep."""
        recorded = 0
        with self.registry.session() as session:
            if session.scalars(select(DriftRecord.id).where(DriftRecord.flow_run_id == flow_run_id)).first():
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

    def drift_of(self, client_id: str, history: int = 20) -> tuple[Client, list[DriftRecord]]:
        with self.registry.session() as session:
            client = self._client(session, client_id)
            records = session.scalars(
                select(DriftRecord)
                .where(DriftRecord.client_id == client_id)
                .order_by(DriftRecord.checked_at.desc(), DriftRecord.id.desc())
                .limit(history)
            ).all()
            return client, list(records)

    def children(self, client_id: str) -> list[Client]:
        with self.registry.session() as session:
            return self._children(session, client_id)

    # Finishing ---------------------------------------------------------------------------
    def end(
        self, run_id: str, status: RunStatus, message: str, result: dict[str, Any] | None = None
    ) -> RunStatus | None:
        """Record a terminal run and what it means for its client; a second report of the
        same end (two syncers, a restart) changes nothing and returns None."""
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is None or run.terminal:
                return None
            run.end(status, message, result)
            return status

    def awaiting_approval(self, run_id: str, message: str) -> None:
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is not None and run.status == RunStatus.in_progress:
                run.waiting_for_approval(message)

    def has_live_run(self, client_id: str) -> bool:
        """A run of this client Prefect is running (not waiting to be dispatched or approved)."""
        with self.registry.session() as session:
            return (
                session.scalars(
                    select(Run.id).where(Run.client_id == client_id, Run.status == RunStatus.in_progress)
                ).first()
                is not None
            )

    def open_runs(self, limit: int = 500) -> list[Run]:
        """Runs handed to Prefect and not yet ended, oldest first."""
        with self.registry.session() as session:
            return list(
                session.scalars(
                    select(Run)
                    .where(Run.status.in_([RunStatus.in_progress, RunStatus.awaiting_approval]))
                    .order_by(Run.created_at)
                    .limit(limit)
                ).all()
            )

    def mark_dispatched(self, run_id: str, flow_run_id: str) -> None:
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is not None and run.status == RunStatus.accepted:
                run.dispatched(flow_run_id)

    def note_dispatch_failure(self, run_id: str, reason: str) -> None:
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is not None and run.status == RunStatus.accepted:
                run.dispatch_failed(reason)

    def parameters(self, run: Run) -> FlowParameters:
        """What the run's flow is given: the inputs as they were when it was accepted."""
        return FlowParameters.model_validate({**run.parameters, "run_id": run.id})

    def runs_in(self, status: RunStatus, limit: int = 200) -> list[Run]:
        with self.registry.session() as session:
            return list(
                session.scalars(
                    select(Run).where(Run.status == status).order_by(Run.created_at).limit(limit)
                ).all()
            )

    def blocker(self, run: Run) -> tuple[bool, str]:
        """(wait, reason): runs of one client go to Prefect one at a time, in order (a run
        suspended for approval does not hold the others back); sub-clients wait for their
        parent to be ready before provisioning, parents wait for their sub-clients to be
        destroyed; a failed prerequisite fails the run."""
        with self.registry.session() as session:
            client = session.get(Client, run.client_id)
            assert client is not None
            ahead = session.scalars(
                select(Run.id).where(
                    Run.client_id == client.id,
                    (Run.status == RunStatus.in_progress)
                    | ((Run.status == RunStatus.awaiting_approval) & Run.cancel_reason.is_not(None)),
                    Run.id != run.id,
                )
            ).first()
            if ahead is not None:
                return True, f"waiting for run {ahead} of this client to end"
            if run.operation == Operation.provision and client.parent_id:
                parent = session.get(Client, client.parent_id)
                if parent is None or parent.gone:
                    return False, f"parent {client.parent_id} is gone"
                if parent.status == ClientStatus.failed:
                    return False, f"parent {parent.id} failed: {parent.status_message}"
                if parent.status != ClientStatus.ready:
                    return True, f"waiting for parent {parent.id} to be provisioned"
            if run.operation == Operation.destroy:
                for child in self._children(session, client.id):
                    if child.status == ClientStatus.destroyed:
                        continue
                    destroying = self._open_run(session, child.id, Operation.destroy)
                    if destroying is None and child.status == ClientStatus.failed:
                        return False, f"sub-client {child.id} could not be destroyed"
                    return True, f"waiting for sub-client {child.id} to be destroyed"
            return False, ""

    # Internals ---------------------------------------------------------------------------
    def _run(self, session: Session, run_id: str) -> Run:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        return run

    def _latest(self, session: Session, client_id: str) -> Run | None:
        return session.scalars(
            select(Run).where(Run.client_id == client_id).order_by(Run.created_at.desc()).limit(1)
        ).first()

    def _client(self, session: Session, client_id: str, kinds: Sequence[str] | None = None) -> Client:
        client = session.get(Client, client_id)
        if client is None or (kinds and client.kind not in kinds):
            what = "client" if not kinds else " or ".join(kinds)
            raise NotFound(f"{what} {client_id} not found")
        return client

    def _locked_client(self, session: Session, client_id: str, kinds: Sequence[str] | None = None) -> Client:
        """The client, with its row write-locked until the transaction ends: requests that
        read the client's runs and then add one (PATCH, retry, DELETE...) take their turns,
        so two of them never decide on the same picture. On SQLite the write starts the
        transaction (the driver begins one only on a write), on PostgreSQL it locks the row."""
        session.execute(text("UPDATE clients SET status = status WHERE id = :id"), {"id": client_id})
        return self._client(session, client_id, kinds)

    def _require_not_destroying(self, session: Session, client_id: str) -> None:
        """Once a destroy is accepted nothing else is: it would run after the destroy."""
        if destroy := self._open_run(session, client_id, Operation.destroy):
            raise Conflict(f"client {client_id} is being destroyed (run {destroy.id} is {destroy.status})")

    def _drop_awaiting(self, session: Session, client_id: str, destroy: Run) -> None:
        """A plan awaiting approval would apply to a stack the destroy removes: it ends
        cancelled, saying why, and the destroy waits until Prefect has ended it."""
        awaiting = session.scalars(
            select(Run).where(Run.client_id == client_id, Run.status == RunStatus.awaiting_approval)
        ).all()
        for run in awaiting:
            if run.cancel_reason is None:
                run.request_cancel(f"the client is being destroyed (run {destroy.id})")

    def _require_unique_in_family(
        self, session: Session, parent_id: str, client_id: str, inputs: dict[str, Any], unique: UniqueInFamily
    ) -> None:
        """Under the parent's lock, so two sub-clients registered at once are told apart."""
        parent = self._locked_client(session, parent_id)
        value = unique.key(inputs)
        for other in [parent, *self._children(session, parent_id)]:
            if other.id == client_id or other.status == ClientStatus.destroyed:
                continue
            if unique.key(other.inputs) == value:
                who = "its parent" if other is parent else f"sub-client {other.id}"
                name = f" ({other.name})" if other.name else ""
                raise Conflict(
                    f"{unique.field} gives the {unique.what} {value!r}, which {who}{name} already uses "
                    f"on {parent_id}: choose another {unique.field}"
                )

    def _children(self, session: Session, client_id: str) -> list[Client]:
        return list(session.scalars(select(Client).where(Client.parent_id == client_id)).all())

    def _open_run(self, session: Session, client_id: str, operation: Operation) -> Run | None:
        return session.scalars(
            select(Run).where(
                Run.client_id == client_id, Run.operation == operation.value, Run.status.in_(OPEN_RUN)
            )
        ).first()

    def _new_run(
        self,
        session: Session,
        client: Client,
        operation: Operation,
        key: str | None,
        body_print: str,
        inputs: dict[str, Any] | None = None,
        approval: Approval | None = None,
    ) -> Run:
        run_id = new_id()
        needs_approval = (approval or client.approval) == Approval.required
        params = FlowParameters(
            run_id=run_id,
            client_id=client.id,
            target=client.target,
            inputs=client.inputs if inputs is None else inputs,
            approval_required=needs_approval and operation is Operation.provision,
        )
        run = Run(
            id=run_id,
            client=client,
            operation=operation.value,
            started_by=caller_name.get(),
            status=RunStatus.accepted,
            message="accepted; waiting for Prefect",
            idempotency_key=key,
            fingerprint=body_print,
            parameters=params.model_dump(mode="json"),
        )
        session.add(run)
        session.flush()
        return run

    def _by_idempotency_key(self, key: str, body_print: str) -> Accepted | None:
        with self.registry.session() as session:
            run = session.scalars(select(Run).where(Run.idempotency_key == key)).first()
            if run is None:
                return None
            if run.fingerprint != body_print:
                raise Conflict("Idempotency-Key was already used with a different request body")
            return Accepted(run=run, client=run.client, created=False)

    def _same_client(self, session: Session, existing: Client, body_print: str) -> Accepted:
        if existing.fingerprint != body_print:
            raise Conflict(f"client {existing.id} already exists with a different request body")
        first = session.scalars(
            select(Run)
            .where(Run.client_id == existing.id, Run.operation == Operation.provision.value)
            .order_by(Run.created_at.desc())
            .limit(1)
        ).first()
        assert first is not None
        return Accepted(run=first, client=existing, created=False)
