"""What an accepted run waits for before Prefect may take it, or why it never will."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.clients import store as clients
from api.registry.models import Client, ClientStatus, Run, RunStatus
from api.runs import store as runs
from flows.contract import Operation


class Verdict(enum.Enum):
    go = "go"
    """Nothing holds it: hand it to Prefect."""
    wait = "wait"
    """It stays accepted; the reason says for what."""
    refuse = "refuse"
    """It never can run; it ends failed with the reason."""


@dataclass(frozen=True)
class Gate:
    verdict: Verdict
    reason: str = ""


GO = Gate(Verdict.go)


def gate(session: Session, run: Run) -> Gate:
    """Runs of one client go to Prefect one at a time, in order (a run suspended for
    approval does not hold the others back, unless it is being cancelled); sub-clients wait
    for their parent to be ready before provisioning, parents wait for their sub-clients to
    be destroyed; a failed prerequisite refuses the run."""
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
        return Gate(Verdict.wait, f"waiting for run {ahead} of this client to end")
    if run.operation == Operation.provision and client.parent_id:
        parent = session.get(Client, client.parent_id)
        if parent is None or parent.gone:
            return Gate(Verdict.refuse, f"parent {client.parent_id} is gone")
        if parent.status == ClientStatus.failed:
            return Gate(Verdict.refuse, f"parent {parent.id} failed: {parent.status_message}")
        if parent.status != ClientStatus.ready:
            return Gate(Verdict.wait, f"waiting for parent {parent.id} to be provisioned")
    if run.operation == Operation.destroy:
        for child in clients.children(session, client.id):
            if child.status == ClientStatus.destroyed:
                continue
            destroying = runs.open_run(session, child.id, Operation.destroy)
            if destroying is None and child.status == ClientStatus.failed:
                return Gate(Verdict.refuse, f"sub-client {child.id} could not be destroyed")
            return Gate(Verdict.wait, f"waiting for sub-client {child.id} to be destroyed")
    return GO
