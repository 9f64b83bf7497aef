"""Business rules of the gateway: accepting requests (idempotently), and what a finished
run means for its client. Routes parse and delegate here; the dispatcher calls
``finish`` when Prefect reports a terminal state."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flows.registry.db import Registry
from flows.registry.models import Client, ClientStatus, Run, RunStatus, new_id, utcnow
from flows.workflows import workflows

ACTIVE_CLIENT = (ClientStatus.pending, ClientStatus.provisioning, ClientStatus.ready, ClientStatus.failed)


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


@dataclass(frozen=True)
class Accepted:
    run: Run
    client: Client
    created: bool


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


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
    ) -> Accepted:
        """A new client and its first provision run, in one transaction.

        With a given ``client_id`` (hospitals) the same body again returns the same
        request and another body is a conflict; so does an ``Idempotency-Key``.
        """
        body_print = fingerprint({"kind": kind, "target": target, "inputs": inputs, "parent": parent_id})
        if idempotency_key and (same := self._by_idempotency_key(idempotency_key, body_print)):
            return same
        with self.registry.session() as session:
            if client_id and (existing := session.get(Client, client_id)):
                return self._same_client(session, existing, body_print)
            if parent_id and session.get(Client, parent_id) is None:
                raise NotFound(f"parent client {parent_id} not found")
        cid = client_id or new_id()
        try:
            with self.registry.session() as session:
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
                run = self._new_run(session, client, "provision", idempotency_key, body_print)
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
        self, client_id: str, operation: str, *, cascade: bool = False, idempotency_key: str | None = None
    ) -> Accepted:
        """destroy, plan, create-tables... on an existing client."""
        if operation not in workflows():
            raise NotFound(f"unknown operation {operation!r}")
        op_print = fingerprint({"client": client_id, "operation": operation, "cascade": cascade})
        if idempotency_key and (same := self._by_idempotency_key(idempotency_key, op_print)):
            return same
        with self.registry.session() as session:
            client = self._client(session, client_id)
            if client.status == ClientStatus.destroyed:
                raise Conflict(f"client {client_id} is already destroyed")
            if operation == "destroy":
                live = [c for c in self._children(session, client_id) if c.status != ClientStatus.destroyed]
                if live and not cascade:
                    names = ", ".join(c.id for c in live)
                    raise Conflict(
                        f"client {client_id} still has {len(live)} sub-client(s) ({names}); "
                        "delete them first or pass cascade=true"
                    )
                for child in live:
                    if not self._open_run(session, child.id, "destroy"):
                        self._new_run(session, child, "destroy", None, op_print)
            if pending := self._open_run(session, client_id, operation):
                return Accepted(run=pending, client=client, created=False)
            run = self._new_run(session, client, operation, idempotency_key, op_print)
        self.wake()
        return Accepted(run=run, client=client, created=True)

    # Reading -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFound(f"request {run_id} not found")
            return run

    def get_client(self, client_id: str) -> tuple[Client, Run | None]:
        with self.registry.session() as session:
            client = self._client(session, client_id)
            latest = session.scalars(
                select(Run).where(Run.client_id == client_id).order_by(Run.created_at.desc()).limit(1)
            ).first()
            return client, latest

    def list_clients(
        self,
        *,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        include_destroyed: bool = False,
    ) -> tuple[list[Client], int]:
        query = select(Client)
        if kinds:
            query = query.where(Client.kind.in_(kinds))
        if not include_destroyed:
            query = query.where(Client.status != ClientStatus.destroyed)
        with self.registry.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(Client.created_at).limit(limit).offset(offset)).all()
            return list(rows), total

    def children(self, client_id: str) -> list[Client]:
        with self.registry.session() as session:
            return self._children(session, client_id)

    # Finishing ---------------------------------------------------------------------------
    def finish(self, run_id: str, *, ok: bool, message: str, result: dict[str, Any] | None) -> None:
        """Record a terminal run and what it means for its client."""
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is None or RunStatus(run.status).terminal:
                return
            run.status = RunStatus.completed if ok else RunStatus.failed
            run.message = message
            run.result = result
            run.finished_at = utcnow()
            client = run.client
            if run.operation == "provision":
                client.status = ClientStatus.ready if ok else ClientStatus.failed
                if ok and result is not None:
                    client.outputs = result.get("outputs", {})
            elif run.operation == "destroy":
                client.status = ClientStatus.destroyed if ok else ClientStatus.failed
                if ok:
                    client.outputs = None
            if run.operation in ("provision", "destroy"):
                client.status_message = "" if ok else message

    def mark_dispatched(self, run_id: str, flow_run_id: str) -> None:
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is None or run.status != RunStatus.accepted:
                return
            run.status = RunStatus.in_progress
            run.flow_run_id = flow_run_id
            run.message = "flow run created"
            if run.operation == "provision":
                run.client.status = ClientStatus.provisioning
            elif run.operation == "destroy":
                run.client.status = ClientStatus.destroying

    def note_dispatch_failure(self, run_id: str, reason: str) -> None:
        with self.registry.session() as session:
            run = session.get(Run, run_id)
            if run is not None and run.status == RunStatus.accepted:
                run.dispatch_attempts += 1
                run.message = f"waiting for Prefect: {reason}"[:500]

    def runs_in(self, status: RunStatus, limit: int = 200) -> list[Run]:
        with self.registry.session() as session:
            return list(
                session.scalars(
                    select(Run).where(Run.status == status).order_by(Run.created_at).limit(limit)
                ).all()
            )

    def blocker(self, run: Run) -> tuple[bool, str]:
        """(wait, reason): sub-clients wait for their parent to be ready before provisioning,
        parents wait for their sub-clients to be destroyed; a failed prerequisite fails the run."""
        with self.registry.session() as session:
            client = session.get(Client, run.client_id)
            assert client is not None
            if run.operation == "provision" and client.parent_id:
                parent = session.get(Client, client.parent_id)
                if parent is None or parent.status in (ClientStatus.destroying, ClientStatus.destroyed):
                    return False, f"parent {client.parent_id} is gone"
                if parent.status == ClientStatus.failed:
                    return False, f"parent {parent.id} failed: {parent.status_message}"
                if parent.status != ClientStatus.ready:
                    return True, f"waiting for parent {parent.id} to be provisioned"
            if run.operation == "destroy":
                for child in self._children(session, client.id):
                    if child.status == ClientStatus.destroyed:
                        continue
                    destroying = self._open_run(session, child.id, "destroy")
                    if destroying is None and child.status == ClientStatus.failed:
                        return False, f"sub-client {child.id} could not be destroyed"
                    return True, f"waiting for sub-client {child.id} to be destroyed"
            return False, ""

    # Internals ---------------------------------------------------------------------------
    def _client(self, session: Session, client_id: str) -> Client:
        client = session.get(Client, client_id)
        if client is None:
            raise NotFound(f"client {client_id} not found")
        return client

    def _children(self, session: Session, client_id: str) -> list[Client]:
        return list(session.scalars(select(Client).where(Client.parent_id == client_id)).all())

    def _open_run(self, session: Session, client_id: str, operation: str) -> Run | None:
        return session.scalars(
            select(Run).where(
                Run.client_id == client_id,
                Run.operation == operation,
                Run.status.in_([RunStatus.accepted, RunStatus.in_progress]),
            )
        ).first()

    def _new_run(
        self, session: Session, client: Client, operation: str, key: str | None, body_print: str
    ) -> Run:
        run = Run(
            id=new_id(),
            client=client,
            operation=operation,
            status=RunStatus.accepted,
            message="accepted; waiting for Prefect",
            idempotency_key=key,
            fingerprint=body_print,
            parameters={"client_id": client.id, "target": client.target, "inputs": client.inputs},
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
            .where(Run.client_id == existing.id, Run.operation == "provision")
            .order_by(Run.created_at.desc())
            .limit(1)
        ).first()
        assert first is not None
        return Accepted(run=first, client=existing, created=False)
