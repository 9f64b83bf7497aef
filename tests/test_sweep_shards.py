"""Sweeps that fan out (issue 25), on the session's Prefect server with real Terraform and
localcloud, and a second worker on the same pool: a sweep larger than a shard runs each
shard as a flow run of its own; every client is checked once and recorded through the
gateway; a shard whose process is killed has its clients reported with the reason; a
scheduled sweep that finds the previous one running is skipped, saying so.

The clients are written straight into the registry as ready (nothing provisioned): their
plans find nothing built, so each check reports drift (a create), which is all a sweep's
bookkeeping needs and costs one terraform init and plan each."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.conftest import WORKER_ENV
from tests.support import start_worker, stop_worker

pytestmark = pytest.mark.usefixtures("worker")

SWEEP = "reconcile/reconcile"
INPUTS = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "shard", "count": 1}


@pytest.fixture(scope="module")
def second_worker(worker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Another process worker on the same pool: shards are shared between the two."""
    from flows.logs import prefect_logging_env

    log = tmp_path_factory.mktemp("second-worker") / "worker.log"
    proc = start_worker({**os.environ, **WORKER_ENV, **prefect_logging_env("json")}, log)
    yield proc
    stop_worker(proc)


@pytest.fixture
def ready_clients(tmp_path: Path) -> list[str]:
    """Five clients in the gateway's registry (tests/conftest.py's path), ready."""
    from api.clients.service import ClientService
    from api.registry.db import Registry
    from api.registry.models import RunStatus
    from api.runs.service import RunService

    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    registry.migrate()
    service, runs = ClientService(registry), RunService(registry)
    ids = []
    for _ in range(5):
        accepted = service.create_client(kind="instances", target="local", inputs=INPUTS)
        runs.dispatched(accepted.run.id, str(uuid.uuid4()))
        runs.end(accepted.run.id, RunStatus.completed, "built")
        ids.append(accepted.run.client_id)
    registry.dispose()
    return ids


def _targets(count: int) -> list[dict[str, Any]]:
    """Clients the registry does not know: a sweep plans them all the same."""
    from flows.contract import FlowParameters, SweepTarget

    return [
        SweepTarget(
            params=FlowParameters(run_id=f"sweep-{cid}", client_id=cid, target="local", inputs=INPUTS)
        ).model_dump(mode="json")
        for cid in (str(uuid.uuid4()) for _ in range(count))
    ]


def _start_sweep(parameters: dict[str, Any]) -> str:
    from prefect.deployments import run_deployment

    run = run_deployment(SWEEP, parameters=parameters, timeout=0, as_subflow=False)
    return str(run.id)  # type: ignore[union-attr]


def _flow_run(flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id))


def _ended(flow_run_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(1)
    raise TimeoutError(f"flow run {flow_run_id} did not end within {timeout}s: {run.state}")


def _shards(parent: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"sweep:{parent}"]))
            )
        )


def _published(flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from flows.contract import SWEEP_KEY, read_sweep

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
                key=ArtifactFilterKey(any_=[SWEEP_KEY]),
            )
        )
    assert found, f"sweep {flow_run_id} published no result"
    return read_sweep(found[0].data)


def test_a_sweep_of_three_shards_on_two_workers_checks_every_client_once(
    ready_clients: list[str], gateway: Any, second_worker: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    fleet = gateway.get("/api/reconcile/fleet").json()
    assert fleet["total"] == 5
    parent = _start_sweep({"clients": fleet["clients"], "shard_size": 2})
    ended = _ended(parent)
    assert ended.state.is_completed(), ended.state

    shards = _shards(parent)
    assert len(shards) == 3 and all(s.state.is_completed() for s in shards), [s.state for s in shards]
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[s.id for s in shards]))
        )
    checked = sorted(t.name for t in tasks if t.name.startswith("check-"))
    assert checked == sorted(f"check-{c}" for c in ready_clients), "each client checked once, in a shard"

    result = _published(parent)
    assert sorted(c.client_id for c in result.checks) == sorted(ready_clients)
    assert {(c.status.value, c.action) for c in result.checks} == {("drifted", "reported")}, result

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the gateway's dispatcher records finished sweeps
        reports = [gateway.get(f"/api/clients/{c}/drift").json() for c in ready_clients]
        if all(r["history"] for r in reports):
            break
        time.sleep(1)
    for report in reports:
        assert report["status"] == "drifted", report
        assert [h["sweep_flow_run_id"] for h in report["history"]] == [parent], report


def test_a_killed_shard_has_its_clients_reported_with_the_reason(second_worker: Any) -> None:
    targets = _targets(4)
    parent = _start_sweep({"clients": targets, "shard_size": 2})
    deadline, victim = time.monotonic() + 180, None
    while victim is None and time.monotonic() < deadline:
        for shard in _shards(parent):
            if shard.state is not None and shard.state.is_running() and shard.infrastructure_pid:
                os.kill(int(str(shard.infrastructure_pid).rsplit(":", 1)[-1]), signal.SIGKILL)
                victim = shard
                break
        time.sleep(0.2)
    assert victim is not None, "no shard ran"
    ended = _ended(parent)
    assert ended.state.is_completed(), ended.state
    killed = _flow_run(str(victim.id))
    assert killed.state.type.value == "CRASHED", killed.state

    result = _published(parent)
    assert sorted(c.client_id for c in result.checks) == sorted(t["params"]["client_id"] for t in targets)
    lost = [c for c in result.checks if c.action == "failed"]
    assert len(lost) == 2, result
    for check in lost:
        assert check.status.value == "unknown"
        assert str(victim.id) in check.reason and "Crashed" in check.reason, check.reason
    others = {c.action for c in result.checks if c not in lost}
    assert others == {"reported"}, [(c.client_id, c.action, c.reason) for c in result.checks]


def test_a_scheduled_sweep_finding_the_previous_one_running_is_skipped() -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Running

    from flows.reconcile import reconcile

    with get_client(sync_client=True) as client:
        previous = client.create_flow_run(reconcile, parameters={}, state=Running())
    try:
        state = reconcile(return_state=True)
        assert state.is_completed(), state
        message = state.message or ""
        assert "skipped" in message and str(previous.id) in message, message
        asked = reconcile(clients=[], return_state=True)
        assert asked.is_completed() and "skipped" not in (asked.message or ""), "an asked sweep runs"
    finally:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(previous.id, Cancelled(message="test over"), force=True)


def test_a_sweep_in_shards_waits_for_the_one_running(
    ready_clients: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sweeps in shards go to Prefect one at a time: each holds a worker's slot while its
    shards run, and enough of them at once would hold every slot."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Running

    from api.clients.filters import ClientFilter
    from api.clients.service import ClientService
    from api.dispatcher import Dispatcher
    from api.prefect_gateway import PrefectGateway
    from api.registry.db import Registry
    from api.runs.service import RunService
    from api.sweeps.service import SweepService
    from flows.settings import get_settings

    monkeypatch.setenv("SWEEP_SHARD_SIZE", "2")
    get_settings.cache_clear()
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    sweeps = SweepService(ClientService(registry))
    dispatcher = Dispatcher(
        RunService(registry), PrefectGateway(), dispatch_interval=1, sync_interval=1, sweeps=sweeps
    )
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(SWEEP)
        running = client.create_flow_run_from_deployment(
            deployment.id, parameters={"clients": _targets(3)}, state=Running()
        )
    started: list[str] = []
    try:
        held = sweeps.accept(ClientFilter())
        assert asyncio.run(dispatcher.dispatch_sweeps()) == 0
        waiting = sweeps.get(held.id)
        assert waiting.status == "accepted" and str(running.id) in waiting.message, waiting.message

        one = sweeps.accept(ClientFilter(), client_id=ready_clients[0])
        assert asyncio.run(dispatcher.dispatch_sweeps()) == 1, "a sweep of one client is not held"
        started.append(str(sweeps.get(one.id).flow_run_id))

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(running.id, Cancelled(message="test over"), force=True)
        assert asyncio.run(dispatcher.dispatch_sweeps()) == 1, "the held sweep goes once the other ended"
        started.append(str(sweeps.get(held.id).flow_run_id))
    finally:
        with get_client(sync_client=True) as client:
            for flow_run_id in [str(running.id), *started]:
                client.set_flow_run_state(UUID(flow_run_id), Cancelled(message="test over"), force=True)
        registry.dispose()
        get_settings.cache_clear()
