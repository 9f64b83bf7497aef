"""Day two through the gateway, with a real worker, real Terraform and localcloud: change a
client (JSON merge patch), retry, plan, approve or reject a saved plan, cancel mid-apply,
history, and no concurrency limit left behind by a destroyed client."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_until

pytestmark = pytest.mark.usefixtures("worker")

TERMINAL = {"completed", "failed", "cancelled"}


def request(prefix: str, count: int = 1) -> dict[str, Any]:
    return {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": prefix, "count": count}


def wait_run(gateway: Any, run_id: str, until: set[str] = TERMINAL, timeout: float = 150) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = gateway.get(f"/api/runs/{run_id}").json()
        if body["status"] in until:
            return body
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} not {until} after {timeout}s: {body}")


def provisioned(gateway: Any, prefix: str, count: int = 1) -> str:
    accepted = gateway.post("/provision", json=request(prefix, count)).json()
    done = wait_run(gateway, accepted["request_id"])
    assert done["status"] == "completed", done
    return str(done["client_uuid"])


def instance_ids(gateway: Any, client_id: str) -> list[str]:
    outputs = gateway.get(f"/api/clients/{client_id}/outputs").json()["outputs"]
    return [i["instance_id"] for i in outputs.get("instances", [])]


def run_count(gateway: Any, client_id: str) -> int:
    return int(gateway.get(f"/api/clients/{client_id}/runs").json()["total"])


def test_patch_adds_one_instance_and_keeps_the_others(gateway: Any) -> None:
    cid = provisioned(gateway, "grow", 2)
    before = instance_ids(gateway, cid)
    assert len(before) == 2

    bad = gateway.patch(f"/api/clients/{cid}", json={"count": 0})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "count"]
    frozen = gateway.patch(f"/api/clients/{cid}", json={"cloud_provider": "aws"})
    assert frozen.status_code == 422 and frozen.json()["detail"][0]["loc"] == ["body", "cloud_provider"]
    assert "cannot change" in frozen.json()["detail"][0]["msg"]
    unknown = gateway.patch(f"/api/clients/{cid}", json={"colour": "red"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "colour"]
    same = gateway.patch(f"/api/clients/{cid}", json={"count": 2})
    assert same.status_code == 200 and "changes nothing" in same.json()["message"]
    assert run_count(gateway, cid) == 1, "rejected and empty patches start nothing"
    assert gateway.get(f"/api/clients/{cid}/status").json()["inputs"]["count"] == 2

    changed = gateway.patch(f"/api/clients/{cid}", json={"count": 3})
    assert changed.status_code == 202 and changed.json()["operation"] == "provision"
    done = wait_run(gateway, changed.json()["request_id"])
    assert done["status"] == "completed", done
    assert done["result"]["change_summary"]["add"] == 1 and done["result"]["change_summary"]["remove"] == 0
    after = instance_ids(gateway, cid)
    assert len(after) == 3 and set(before) <= set(after)

    view = gateway.get(f"/api/clients/{cid}/status").json()
    assert view["inputs"]["count"] == 3 and view["module_version"]
    history = gateway.get(f"/api/clients/{cid}/runs", params={"limit": 1}).json()
    assert history["total"] == 2 and history["runs"][0]["request_id"] == changed.json()["request_id"]

    planned = gateway.post(f"/api/clients/{cid}/plan")
    assert planned.status_code == 202
    plan = wait_run(gateway, planned.json()["request_id"])
    assert plan["status"] == "completed" and plan["result"]["has_changes"] is False

    # Out of band: an instance disappears. A plan names it; nothing is applied.
    data = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud" / "instances"
    (data / f"{after[0]}.json").unlink()
    plan = wait_run(gateway, gateway.post(f"/api/clients/{cid}/plan").json()["request_id"])
    assert plan["result"]["has_changes"] is True
    assert [c["action"] for c in plan["result"]["changes"]] == ["create"]
    assert not (data / f"{after[0]}.json").exists()


def test_a_failed_run_is_retried_with_the_same_inputs(gateway: Any) -> None:
    faults = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud" / "_faults"
    faults.mkdir(parents=True, exist_ok=True)
    marker = faults / "refuse-flaky"
    marker.touch()
    try:
        accepted = gateway.post("/provision", json=request("flaky")).json()
        failed = wait_run(gateway, accepted["request_id"])
        assert failed["status"] == "failed"
        assert "injected permanent failure" in failed["message"]
    finally:
        marker.unlink()
    cid = failed["client_uuid"]
    assert gateway.get(f"/api/clients/{cid}/status").json()["status"] == "failed"
    retried = gateway.post(f"/api/clients/{cid}/retry")
    assert retried.status_code == 202 and retried.json()["operation"] == "provision"
    done = wait_run(gateway, retried.json()["request_id"])
    assert done["status"] == "completed", done
    assert len(instance_ids(gateway, cid)) == 1
    again = gateway.post(f"/api/clients/{cid}/retry")
    assert again.status_code == 409 and "completed" in again.json()["detail"]


def _wait_for_task(gateway: Any, run_id: str, task: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = gateway.get(f"/api/runs/{run_id}").json()
        if any(t["name"].startswith(task) and t["state"] == "Running" for t in run.get("tasks") or []):
            return
        time.sleep(0.5)
    pytest.fail(f"run {run_id} never ran {task}")


def _instance_names(state: dict[str, Any]) -> list[str]:
    return [
        i["attributes"]["name"]
        for r in state["resources"]
        if r["type"] == "localcloud_instance"
        for i in r["instances"]
    ]


def _processes_in(directory: Path) -> list[int]:
    """Processes working in ``directory``: Terraform runs there (-chdir), and so do the
    providers it starts."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{name}/cwd") == str(directory):
                    found.append(int(name))
    return found


def test_cancel_during_apply_ends_cancelled_and_the_next_run_succeeds(gateway: Any) -> None:
    """Instances named slow-* take two minutes to create (the worker's environment). The
    change replaces steady-1 by slow-cancel-1: Terraform destroys the one and is inside the
    create of the other, holding the state lock, when the run is cancelled. It must stop on
    its SIGINT (as on Ctrl-C): it says so, the destroy it did is in the state, the lock is
    released, and neither it nor its provider is left running."""
    cid = provisioned(gateway, "steady")
    data = Path(os.environ["TENANTFORM_DATA_DIR"])
    workspace = data / "deployments" / cid
    state_file = data / "state" / cid / "terraform.tfstate"
    lock = state_file.with_name(".terraform.tfstate.lock.info")
    before = json.loads(state_file.read_text())
    assert _instance_names(before) == ["steady-1"] and not lock.exists()
    slow = gateway.patch(f"/api/clients/{cid}", json={"instance_name_prefix": "slow-cancel"}).json()

    def inside_the_create() -> bool:
        """steady-1's destroy is in the state (written as it happens), the lock held."""
        state = json.loads(state_file.read_text())
        return state["serial"] > before["serial"] and _instance_names(state) == [] and lock.exists()

    # Terraform writes the state in place: a read may catch it half written (ValueError).
    wait_until(inside_the_create, 120, "steady-1 destroyed, the lock held", transient=(ValueError,))
    holder = json.loads(lock.read_text())
    assert holder["Operation"] == "OperationTypeApply"
    cancel = gateway.post(f"/api/runs/{slow['request_id']}/cancel")
    assert cancel.status_code == 200
    ended = wait_run(gateway, slow["request_id"], timeout=100)
    assert ended["status"] == "cancelled", ended
    assert ended["message"] == "cancelled: cancelled through the API"
    assert gateway.post(f"/api/runs/{slow['request_id']}/cancel").status_code == 409

    messages = [
        json.loads(line).get("@message", "")
        for line in (workspace / "apply.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert any("Interrupt received" in m and "Gracefully shutting down" in m for m in messages), messages
    assert "localcloud_instance.this[0]: Creating..." in messages
    assert not any("Creation complete" in m for m in messages), "the create was stopped, not finished"
    assert not lock.exists(), "Terraform released the state lock before it exited"
    after = json.loads(state_file.read_text())
    assert after["lineage"] == before["lineage"] and after["serial"] > before["serial"], after
    assert _instance_names(after) == [], "the destroy Terraform did before the interrupt is saved"
    assert _processes_in(workspace) == [], "Terraform or its provider outlived the run"
    instances = [json.loads(p.read_text()) for p in (data / "localcloud" / "instances").glob("*.json")]
    assert [i["name"] for i in instances if i["tags"].get("client") == cid] == []

    nxt = gateway.patch(f"/api/clients/{cid}", json={"instance_name_prefix": "after-cancel"}).json()
    done = wait_run(gateway, nxt["request_id"], timeout=100)
    assert done["status"] == "completed", done
    assert len(instance_ids(gateway, cid)) == 1


def test_a_queued_run_is_cancelled_before_prefect_sees_it(gateway: Any) -> None:
    cid = provisioned(gateway, "queue")
    first = gateway.patch(f"/api/clients/{cid}", json={"instance_name_prefix": "slow-queue"}).json()
    second = gateway.patch(f"/api/clients/{cid}", json={"count": 2}).json()
    queued = gateway.get(f"/api/runs/{second['request_id']}").json()
    assert queued["status"] == "accepted", "runs of one client go to Prefect one at a time"
    assert gateway.post(f"/api/runs/{second['request_id']}/cancel").json()["status"] == "cancelled"
    gateway.post(f"/api/runs/{first['request_id']}/cancel")
    assert wait_run(gateway, first["request_id"], timeout=100)["status"] == "cancelled"
    assert gateway.get(f"/api/runs/{second['request_id']}").json()["flow_run_id"] is None


def _awaiting(gateway: Any, cid: str, patch: dict[str, Any]) -> str:
    waiting = gateway.patch(f"/api/clients/{cid}", params={"approval": "required"}, json=patch)
    assert waiting.status_code == 202, waiting.text
    run = wait_run(gateway, waiting.json()["request_id"], until={"awaiting_approval", *TERMINAL})
    assert run["status"] == "awaiting_approval", run
    return str(run["request_id"])


def test_approve_applies_the_saved_plan_reject_ends_and_a_stale_plan_is_refused(gateway: Any) -> None:
    cid = provisioned(gateway, "gate")
    run_id = _awaiting(gateway, cid, {"count": 2})
    assert len(instance_ids(gateway, cid)) == 1, "nothing is applied before approval"
    assert gateway.post(f"/api/clients/{cid}/retry").status_code == 409
    approved = gateway.post(f"/api/runs/{run_id}/approve")
    assert approved.status_code == 200, approved.text
    done = wait_run(gateway, run_id)
    assert done["status"] == "completed", done
    assert done["result"]["change_summary"]["add"] == 1
    assert len(instance_ids(gateway, cid)) == 2
    assert gateway.post(f"/api/runs/{run_id}/approve").status_code == 409

    rejected_id = _awaiting(gateway, cid, {"count": 5})
    rejected = gateway.post(f"/api/runs/{rejected_id}/reject")
    assert rejected.status_code == 200
    ended = wait_run(gateway, rejected_id)
    assert ended["status"] == "cancelled" and ended["message"] == "cancelled: plan rejected"
    assert len(instance_ids(gateway, cid)) == 2

    stale_id = _awaiting(gateway, cid, {"count": 3})
    # Another change is applied while the plan waits: the waiting run holds nothing back.
    other = gateway.patch(f"/api/clients/{cid}", params={"approval": "auto"}, json={"count": 4}).json()
    assert wait_run(gateway, other["request_id"])["status"] == "completed"
    assert len(instance_ids(gateway, cid)) == 4
    assert gateway.post(f"/api/runs/{stale_id}/approve").status_code == 200
    refused = wait_run(gateway, stale_id)
    assert refused["status"] == "failed" and "stale" in refused["message"], refused
    assert len(instance_ids(gateway, cid)) == 4, "a stale plan is never applied"


def test_a_destroyed_client_leaves_no_concurrency_limit(gateway: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.locks import client_limit_name

    cid = provisioned(gateway, "brief")
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(client_limit_name(cid)).limit == 1
    gone = gateway.delete(f"/api/clients/{cid}").json()
    assert wait_run(gateway, gone["request_id"])["status"] == "completed"
    deadline = time.monotonic() + 20
    while True:
        with get_client(sync_client=True) as client:
            try:
                client.read_global_concurrency_limit_by_name(client_limit_name(cid))
            except ObjectNotFound:
                break
        assert time.monotonic() < deadline, "the destroyed client's limit is still there"
        time.sleep(0.5)
    assert gateway.patch(f"/api/clients/{cid}", json={"count": 2}).status_code == 409
    assert gateway.post(f"/api/clients/{cid}/retry").status_code == 409
