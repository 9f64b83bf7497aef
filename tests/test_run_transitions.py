"""A run's status changes only through its own methods, and the dispatcher's record of an
accepted run never leaves it silent: one that waits says for what, one that never can run
ends failed with why, one that ended while Prefect created its flow run is not marked
dispatched. The registry alone, no Prefect."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.clients.service import ClientService
from api.registry.db import Registry
from api.registry.models import InvalidTransition, RunStatus
from api.runs.gate import Verdict
from api.runs.service import RunService
from flows.contract import Operation


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[ClientService, RunService]]:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    registry.migrate()
    yield ClientService(registry), RunService(registry)
    registry.dispose()


def _inputs(prefix: str) -> dict[str, object]:
    return {"cloud_provider": "local", "instance_name_prefix": prefix, "count": 1}


def test_a_run_left_waiting_says_what_it_waits_for(services: tuple[ClientService, RunService]) -> None:
    clients, runs = services
    first = clients.create_client(kind="instances", target="local", inputs=_inputs("gate"))
    assert runs.admit(first.run.id) is not None
    assert runs.dispatched(first.run.id, str(uuid.uuid4()))
    plan = clients.start_operation(first.client.id, Operation.plan)
    gate = runs.admit(plan.run.id)
    assert gate is not None and gate.verdict is Verdict.wait
    waiting = runs.get_run(plan.run.id)
    assert waiting.status == RunStatus.accepted
    assert waiting.message == f"waiting for run {first.run.id} of this client to end"


def test_a_run_that_never_can_run_ends_with_its_reason(services: tuple[ClientService, RunService]) -> None:
    clients, runs = services
    parent = clients.create_client(kind="instances", target="local", inputs=_inputs("parent"))
    child = clients.create_client(
        kind="instances", target="local", inputs=_inputs("child"), parent_id=parent.client.id
    )
    gate = runs.admit(child.run.id)
    assert gate is not None and gate.verdict is Verdict.wait
    assert runs.get_run(child.run.id).message == f"waiting for parent {parent.client.id} to be provisioned"
    runs.dispatched(parent.run.id, str(uuid.uuid4()))
    assert runs.end(parent.run.id, RunStatus.failed, "boom") is RunStatus.failed
    assert runs.end(parent.run.id, RunStatus.failed, "boom") is None  # a second report changes nothing
    gate = runs.admit(child.run.id)
    assert gate is not None and gate.verdict is Verdict.refuse
    refused = runs.get_run(child.run.id)
    assert (refused.status, refused.message) == (RunStatus.failed, f"parent {parent.client.id} failed: boom")
    assert runs.admit(child.run.id) is None


def test_a_run_ended_before_prefect_took_it_is_not_dispatched(
    services: tuple[ClientService, RunService],
) -> None:
    clients, runs = services
    accepted = clients.create_client(kind="instances", target="local", inputs=_inputs("late"))
    runs.cancel(accepted.run.id, "changed my mind")
    assert not runs.dispatched(accepted.run.id, str(uuid.uuid4()))
    ended = runs.get_run(accepted.run.id)
    assert (ended.status, ended.flow_run_id) == (RunStatus.cancelled, None)


def test_transitions_are_refused_by_the_noun(services: tuple[ClientService, RunService]) -> None:
    clients, runs = services
    accepted = clients.create_client(kind="instances", target="local", inputs=_inputs("noun"))
    with pytest.raises(InvalidTransition, match=f"run {accepted.run.id} is accepted, not awaiting approval"):
        runs.reject(accepted.run.id)
    with pytest.raises(InvalidTransition, match="only a failed or cancelled run is retried"):
        clients.retry(accepted.client.id)
    clients.start_operation(accepted.client.id, Operation.destroy)
    with pytest.raises(InvalidTransition, match=f"client {accepted.client.id} is being destroyed"):
        clients.start_operation(accepted.client.id, Operation.plan)
