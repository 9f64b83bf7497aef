"""The fault matrix's small twin (``bench/fault_matrix.py`` is the large one): a stack of
its own (Prefect server, worker, gateway, each a real process), SIGKILLs at the moments
the other tests do not reach, then the promises checked: every run ends with a reason,
exactly one flow run per request, the registry agrees with Prefect, no client slot is
left taken, and the same client runs again at once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.processes import descendants
from tests.support import (
    free_port,
    gateway_env,
    http_ok,
    start_gateway,
    start_prefect_server,
    start_worker,
    stop_process,
    stop_worker,
    wait_until,
)

KEY = "fault-key-0123456789"
ENDED = ("completed", "failed", "cancelled")
SLOW = {"LOCALCLOUD_CREATE_DELAY_SECONDS": "6", "LOCALCLOUD_DELAY_NAME_PREFIX": "slow"}


@dataclass
class Stack:
    root: Path
    prefect_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def env(self) -> dict[str, str]:
        return {
            **gateway_env(self.root, self.api_url, KEY),
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
            **SLOW,
            **self.extra,
        }

    def start_server(self) -> None:
        (self.root / "prefect").mkdir(parents=True, exist_ok=True)
        self.server = start_prefect_server(self.root / "prefect", self.prefect_port)
        wait_until(lambda: http_ok(f"{self.api_url}/health"), 180, "the Prefect server")

    def start_worker(self) -> None:
        self.worker = start_worker(self.env, self.root / "worker.log")

    def start_gateway(self) -> None:
        self.gateway = start_gateway(self.env, self.gateway_port, self.root / "gateway.log")
        wait_until(lambda: http_ok(f"http://127.0.0.1:{self.gateway_port}/openapi.json"), 60, "the gateway")

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.gateway_port}", headers={"X-API-Key": KEY}, timeout=20
        )


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    import asyncio

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.apply import set_up_prefect

    running = Stack(tmp_path, extra=getattr(request, "param", {}))
    try:
        running.start_server()  # inside: a server that never answers is stopped too
        with temporary_settings(updates={PREFECT_API_URL: running.api_url}):  # this process's client
            asyncio.run(set_up_prefect())
            running.start_worker()
            running.start_gateway()
            yield running
    finally:
        for proc in (running.gateway, running.worker):
            if proc is not None and proc.poll() is None:
                stop_worker(proc) if proc is running.worker else stop_process(proc)
        if running.server is not None:
            stop_process(running.server)


def with_zombie_automation(within_seconds: int | None) -> None:
    """The missed-heartbeat automation set up again with this bound (None: the default)."""
    import asyncio

    from deployments.apply import ensure_zombie_automation

    asyncio.run(ensure_zombie_automation(within_seconds))


def wait_ended(gateway: httpx.Client, run_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            run: dict[str, Any] = gateway.get(f"/api/runs/{run_id}").json()
            if run["status"] in ENDED:
                return run
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"run {run_id} did not end")


def applying(gateway: httpx.Client, run_id: str) -> bool:
    tasks = gateway.get(f"/api/runs/{run_id}").json().get("tasks") or []
    return any(t["name"].startswith("terraform-apply") and t["state"] == "Running" for t in tasks)


def test_prefect_and_the_gateway_killed_mid_run(stack: Stack) -> None:
    """Prefect's server SIGKILLed while an apply runs and started again; the gateway SIGKILLed
    with the run in flight and started again: the run ends (completed, or failed saying
    why), once; Prefect and the registry agree; the client runs again at once."""
    gateway = stack.client()
    body = {
        "cloud_provider": "local",
        "provider_config": {},
        "instance_name_prefix": "slow-fault",
        "count": 2,
    }
    run_id = gateway.post("/provision", json=body).json()["request_id"]
    wait_until(lambda: applying(gateway, run_id), 180, "terraform-apply to start")

    kill(stack.server)
    kill(stack.gateway)
    time.sleep(2)
    stack.start_server()
    stack.start_gateway()
    gateway = stack.client()

    run = wait_ended(gateway, run_id)
    assert run["message"], "every end has a reason"
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as prefect:
        flow_runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"run:{run_id}"]))
        )
        assert len(flow_runs) == 1, "exactly one flow run for the request, restarts or not"
        state = flow_runs[0].state
        assert state is not None and state.is_final()
        agrees = {"completed": state.is_completed(), "failed": state.is_failed() or state.is_crashed()}
        assert agrees.get(run["status"], False), f"registry {run['status']} vs Prefect {state.type}"

    again = gateway.patch(f"/api/clients/{run['client_uuid']}", json={"instance_name_prefix": "after-fault"})
    assert again.status_code == 202, again.text
    done = wait_ended(gateway, again.json()["request_id"])
    assert done["status"] == "completed", done
    with get_client(sync_client=True) as prefect:
        limit = prefect.read_global_concurrency_limit_by_name(f"tenantform-client-{run['client_uuid']}")
    assert limit.active_slots == 0, "no slot left taken"


def test_the_worker_killed_and_the_same_client_run_again(stack: Stack) -> None:
    """The worker and its run SIGKILLed mid-apply: the run ends with a reason once the
    heartbeat automation (or the late bound) says so, and the next run of that client has
    no stuck slot, no stuck state lock and no half-written state."""
    gateway = stack.client()
    body = {
        "cloud_provider": "local",
        "provider_config": {},
        "instance_name_prefix": "slow-worker",
        "count": 1,
    }
    # The automation's bound shortened for this dead run only (runs heartbeat every 30 s),
    # set before the run starts (it follows a run from a heartbeat it saw); the retry runs
    # under the default again.
    with_zombie_automation(50)
    try:
        run_id = gateway.post("/provision", json=body).json()["request_id"]
        wait_until(lambda: applying(gateway, run_id), 180, "terraform-apply to start")
        kill(stack.worker)
        stack.start_worker()
        run = wait_ended(gateway, run_id, timeout=300)
    finally:
        with_zombie_automation(None)
    assert run["status"] == "failed" and run["message"], run
    retried = gateway.post(f"/api/clients/{run['client_uuid']}/retry")
    assert retried.status_code == 202, retried.text
    done = wait_ended(gateway, retried.json()["request_id"])
    assert done["status"] == "completed", done
    assert len(done["result"]["outputs"]["instances"]) == 1


def flow_runs_of(run_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as prefect:
        return prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"run:{run_id}"]))
        )


# Long enough for the new worker to start the run it takes (Pending → Running) on a loaded
# machine: a run handed back while a live worker starts it makes Prefect's worker stop
# ("this borrower is already holding one of this CapacityLimiter's tokens").
@pytest.mark.parametrize("stack", [{"PENDING_RUN_SECONDS": "60"}], indirect=True)
def test_a_run_a_dead_worker_took_but_never_started_is_handed_back(stack: Stack) -> None:
    """A worker killed between taking a flow run (Pending) and starting its process leaves
    a run with no process, so no heartbeat and no crash: the gateway hands it back to the
    work pool and another worker runs it, once."""
    from prefect.client.orchestration import get_client
    from prefect.states import Pending

    assert stack.worker is not None
    stop_worker(stack.worker)
    gateway = stack.client()
    body = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "pending", "count": 1}
    run_id = gateway.post("/provision", json=body).json()["request_id"]
    wait_until(lambda: len(flow_runs_of(run_id)) == 1, 60, "the dispatcher to create the flow run")
    flow_run_id = flow_runs_of(run_id)[0].id
    with get_client(sync_client=True) as prefect:  # what a worker does when it takes a run
        prefect.set_flow_run_state(flow_run_id, Pending(), force=True)

    def handed_back() -> bool:
        state = flow_runs_of(run_id)[0].state
        return state is not None and state.is_scheduled() and "handed back" in (state.message or "")

    wait_until(handed_back, 120, "the gateway to hand the run back to the pool")
    stack.start_worker()
    done = wait_ended(gateway, run_id)
    assert done["status"] == "completed", done
    assert len(flow_runs_of(run_id)) == 1, "the same flow run, not a second one"
    assert len(done["result"]["outputs"]["instances"]) == 1
