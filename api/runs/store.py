"""Registry reads of runs, and the writing of a new one, inside a caller's session."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import Conflict, NotFound
from api.keys import caller_name
from api.registry.models import OPEN_RUN, Approval, Client, Run, RunStatus, new_id
from flows.contract import FlowParameters, Operation, PolicyOverride, RolloutHint


@dataclass(frozen=True)
class Accepted:
    """A run a request asked for: new (``created``), or the same one asked before."""

    run: Run
    client: Client
    created: bool


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def get(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


def latest(session: Session, client_id: str) -> Run | None:
    return session.scalars(
        select(Run).where(Run.client_id == client_id).order_by(Run.created_at.desc()).limit(1)
    ).first()


def open_run(session: Session, client_id: str, operation: Operation) -> Run | None:
    return session.scalars(
        select(Run).where(
            Run.client_id == client_id, Run.operation == operation.value, Run.status.in_(OPEN_RUN)
        )
    ).first()


def parameters(run: Run) -> FlowParameters:
    """What the run's flow is given: the inputs as they were when it was accepted."""
    return FlowParameters.model_validate({**run.parameters, "run_id": run.id})


def add(
    session: Session,
    client: Client,
    operation: Operation,
    key: str | None,
    body_print: str,
    inputs: dict[str, Any] | None = None,
    approval: Approval | None = None,
    policy_override: PolicyOverride | None = None,
    revision: str | None = None,
    rollout: RolloutHint | None = None,
) -> Run:
    """A new accepted run of ``client``, with its flow's parameters fixed now: its labels, and
    ``revision`` (default: the one the client is pinned to) as the module revision it runs."""
    run_id = new_id()
    revision = revision or client.revision
    needs_approval = (approval or client.approval) == Approval.required
    params = FlowParameters(
        run_id=run_id,
        client_id=client.id,
        target=client.target,
        inputs=client.inputs if inputs is None else inputs,
        approval_required=needs_approval and operation is Operation.provision,
        labels=dict(client.labels or {}),
        revision=revision or "",
        policy_override=policy_override,
        rollout=rollout,
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
        revision=revision,
    )
    session.add(run)
    session.flush()
    return run


def by_idempotency_key(session: Session, key: str, body_print: str) -> Accepted | None:
    run = session.scalars(select(Run).where(Run.idempotency_key == key)).first()
    if run is None:
        return None
    if run.fingerprint != body_print:
        raise Conflict("Idempotency-Key was already used with a different request body")
    return Accepted(run=run, client=run.client, created=False)


def first_provision(session: Session, client: Client, body_print: str) -> Accepted:
    """A client asked for again with its own id: the same body answers with its provision."""
    if client.fingerprint != body_print:
        raise Conflict(f"client {client.id} already exists with a different request body")
    first = session.scalars(
        select(Run)
        .where(Run.client_id == client.id, Run.operation == Operation.provision.value)
        .order_by(Run.created_at.desc())
        .limit(1)
    ).first()
    assert first is not None
    return Accepted(run=first, client=client, created=False)
