"""Through the gateway, with a real worker running the real flows: the Airflow
document's request end to end, idempotency under concurrency, delete, and a run whose
process dies mid-apply."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from deployments.processes import descendants

pytestmark = pytest.mark.usefixtures("worker")

REQUEST = {
    "cloud_provider": "local",
    "provider_config": {},
    "instance_name_prefix": "test-instance",
    "count": 2,
}


def wait_status(gateway: Any, request_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = gateway.get(f"/status/{request_id}").json()
        if body["status"] != "in_progress":
            return body
        time.sleep(0.5)
    raise TimeoutError(f"request {request_id} still in progress after {timeout}s")


def wait_client(gateway: Any, client_id: str, status: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = gateway.get(f"/api/clients/{client_id}/status").json()
        if body["status"] == status:
            return body
        time.sleep(0.5)
    raise TimeoutError(f"client {client_id} not {status} after {timeout}s: {body}")


def test_airflow_request_completes_then_delete_destroys(gateway: Any) -> None:
    accepted = gateway.post("/provision", json=REQUEST)
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["status"] == "in_progress" and body["instances"] is None
    done = wait_status(gateway, body["request_id"])
    assert done["status"] == "completed", done
    assert done["message"] == "Instance provisioning completed successfully"
    assert len(done["instances"]) == 2
    assert {"instance_id", "private_ip", "public_ip"} == set(done["instances"][0])

    run = gateway.get(f"/api/runs/{body['request_id']}", params={"logs": "true"}).json()
    names = [t["name"].rsplit("-", 1)[0] for t in run["tasks"]]
    assert names[:3] == ["prepare-vars", "preflight", "terraform-init"]
    assert "terraform-apply" in names and "read-outputs" in names
    assert any("Apply complete" in line for line in run["logs"])

    client_id = run["client_uuid"]
    listed = gateway.get("/api/clients").json()
    assert client_id in [c["client_uuid"] for c in listed["clients"]]
    outputs = gateway.get(f"/api/clients/{client_id}/outputs").json()
    assert [i["instance_id"] for i in outputs["outputs"]["instances"]] == [
        i["instance_id"] for i in done["instances"]
    ]

    deleted = gateway.delete(f"/api/clients/{client_id}")
    assert deleted.status_code == 202 and deleted.json()["operation"] == "destroy"
    wait_client(gateway, client_id, "destroyed")
    data = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud" / "instances"
    remaining = {p.stem for p in data.glob("*.json")}
    assert not remaining & {i["instance_id"] for i in done["instances"]}
    assert gateway.get(f"/api/clients/{client_id}/outputs").json()["outputs"] == {}


def test_twenty_concurrent_identical_requests_make_one_run(gateway: Any) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {**REQUEST, "count": 1, "instance_name_prefix": "idem"}
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: gateway.post("/provision", json=body, headers=key), range(20)))
    assert {r.status_code for r in responses} == {202}
    ids = {r.json()["request_id"] for r in responses}
    assert len(ids) == 1
    done = wait_status(gateway, ids.pop())
    assert done["status"] == "completed" and len(done["instances"]) == 1
    assert gateway.get("/api/clients").json()["total"] == 1


def _flow_run_processes(worker: Any, warm_engine: Any) -> list[int]:
    """The run's processes: the launcher under the worker and what the warm process forked
    for it (or ``prefect.engine`` when the launcher fell back to a cold start)."""
    pids = list(descendants(warm_engine.pid))
    for pid in descendants(worker.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"prefect.engine" in cmdline or b"deployments.warm.launch" in cmdline:
            pids.append(pid)
    return pids


def test_flow_run_process_killed_mid_apply_ends_failed_with_reason(
    gateway: Any, worker: Any, warm_engine: Any
) -> None:
    body = {**REQUEST, "count": 1, "instance_name_prefix": "slow-crash"}
    request_id = gateway.post("/provision", json=body).json()["request_id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run = gateway.get(f"/api/runs/{request_id}").json()
        if any(t["name"].startswith("terraform-apply") for t in run.get("tasks") or []):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the run never reached terraform-apply")
    victims = _flow_run_processes(worker, warm_engine)
    assert victims, "no flow-run process found under the worker"
    for pid in victims:
        for child in [pid, *descendants(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    done = wait_status(gateway, request_id, timeout=120)
    assert done["status"] == "failed"
    assert done["message"], "a failed run must say why"
    client = gateway.get(f"/api/clients/{run['client_uuid']}/status").json()
    assert client["status"] == "failed" and client["message"]


def test_a_client_limit_exists_before_its_first_flow_run_and_tasks_carry_no_tags(gateway: Any) -> None:
    """The run then takes its client slot in one call; untagged task runs ask Prefect for
    no tag slots (each such request is a write a SQLite-backed Prefect may answer 503)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    accepted = gateway.post("/provision", json={**REQUEST, "instance_name_prefix": "limit-first", "count": 1})
    request_id = accepted.json()["request_id"]
    assert wait_status(gateway, request_id)["status"] == "completed"
    run = gateway.get(f"/api/runs/{request_id}").json()
    with get_client(sync_client=True) as prefect:
        limit = prefect.read_global_concurrency_limit_by_name(f"tenantform-client-{run['client_uuid']}")
        flow_run = prefect.read_flow_run(UUID(run["flow_run_id"]))
        tasks = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run["flow_run_id"])]))
        )
    assert limit.limit == 1 and limit.active_slots == 0
    assert limit.created is not None and flow_run.created is not None
    assert limit.created <= flow_run.created, "the gateway made the limit before the flow run"
    assert f"client:{run['client_uuid']}" in flow_run.tags, "the flow run keeps its tags for the UI"
    assert tasks and all(not t.tags for t in tasks), [t.tags for t in tasks]
