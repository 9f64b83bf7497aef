"""The engine end to end: real Terraform 1.0.3, the real localcloud provider, a real
Prefect server. Flows are called in-process (a worker adds nothing these tests need)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support import flow_params

pytestmark = pytest.mark.usefixtures("prefect_server")

REQUEST = {"cloud_provider": "local", "instance_name_prefix": "web", "count": 2}


def instance_files(settings: Any) -> list[Path]:
    return sorted((settings.root / "localcloud" / "instances").glob("*.json"))


def run(flow_name: str, client_id: str, inputs: dict[str, Any] = REQUEST, **options: Any) -> Any:
    from flows import provision as flows

    flow = getattr(flows, flow_name)
    if options:
        flow = flow.with_options(**options)
    return flow(params=flow_params(client_id, "local", inputs), return_state=True)


def test_provision_update_destroy(settings: Any) -> None:
    cid = str(uuid.uuid4())
    state = run("provision", cid)
    assert state.is_completed(), state.message
    result = state.result()
    instances = result["outputs"]["instances"]
    assert len(instances) == 2
    assert all(i["instance_id"].startswith("i-") and i["private_ip"].startswith("10.") for i in instances)
    assert result["change_summary"]["add"] == 2
    assert "1.0.3" in result["terraform"]
    ws = settings.root / "deployments" / cid
    assert {"init.log", "apply.log"} <= {p.name for p in ws.iterdir()}
    assert (ws / "terraform.tfvars.json").stat().st_mode & 0o777 == 0o600
    assert json.loads((ws / "terraform.tfvars.json").read_text())["instance_count"] == 2

    resized = run("provision", cid, {**REQUEST, "provider_config": {"size": "large"}}).result()
    assert resized["change_summary"] == {"add": 0, "change": 2, "remove": 0, "operation": "apply"}
    assert [i["instance_id"] for i in resized["outputs"]["instances"]] == [
        i["instance_id"] for i in instances
    ]
    assert {json.loads(p.read_text())["size"] for p in instance_files(settings)} == {"large"}

    gone = run("destroy", cid).result()
    assert gone["change_summary"]["remove"] == 2
    assert (ws / "destroy.log").exists()
    assert instance_files(settings) == []


def test_transient_failure_is_retried(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter

    token = uuid.uuid4().hex
    monkeypatch.setenv("LOCALCLOUD_FAIL_TRANSIENT_ONCE", token)
    state = run("provision", str(uuid.uuid4()), {**REQUEST, "count": 1})
    assert state.is_completed(), state.message
    assert len(state.result()["outputs"]["instances"]) == 1
    assert (settings.root / "localcloud" / "_faults" / f"transient-{token}").exists(), "the fault fired"
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(),
        )
    (apply,) = [r for r in runs if r.name.startswith("terraform-apply")]
    assert apply.run_count == 2, "apply ran again after the transient failure"


def test_permanent_failure_fails_with_typed_error(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.terraform.errors import TerraformError

    monkeypatch.setenv("LOCALCLOUD_FAIL_NTH_CREATE", "1")
    state = run("provision", str(uuid.uuid4()), {**REQUEST, "count": 1})
    assert state.is_failed()
    with pytest.raises(TerraformError) as info:
        state.result()
    assert info.value.kind == "unknown" and not info.value.retryable
    assert "quota exceeded" in str(info.value)
    # not retried: exactly one create was attempted
    assert (settings.root / "localcloud" / "_faults" / "create-count").read_text() == "1"


def test_flow_retry_reruns_terraform_instead_of_caching(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter

    monkeypatch.setenv("LOCALCLOUD_FAIL_NTH_CREATE", "1")  # the first create fails for good
    state = run("provision", str(uuid.uuid4()), {**REQUEST, "count": 1}, retries=1, retry_delay_seconds=0)
    assert state.is_completed(), state.message
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(),
        )
    applies = [r for r in runs if r.name.startswith("terraform-apply")]
    assert len(applies) == 2
    assert all(r.state and r.state.name != "Cached" for r in runs)


def test_out_of_band_deletion_shows_as_drift(settings: Any) -> None:
    cid = str(uuid.uuid4())
    assert run("provision", cid).is_completed()
    clean = run("plan", cid).result()
    assert clean["has_changes"] is False and clean["drift"] == []
    instance_files(settings)[0].unlink()
    drifted = run("plan", cid).result()
    assert drifted["has_changes"] is True
    assert len(drifted["drift"]) == 1


def _apply_window(state: Any) -> tuple[float, float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(),
        )
    times = [(r.start_time, r.end_time) for r in runs if r.start_time and r.end_time]
    return min(t[0] for t in times).timestamp(), max(t[1] for t in times).timestamp()


def _run_in_threads(client_ids: list[str]) -> list[tuple[float, float]]:
    states: dict[int, Any] = {}

    def go(i: int, cid: str) -> None:
        states[i] = run("provision", cid, {**REQUEST, "count": 1})

    threads = [threading.Thread(target=go, args=(i, c)) for i, c in enumerate(client_ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(states[i].is_completed() for i in range(len(client_ids))), [s.message for s in states.values()]
    return [_apply_window(states[i]) for i in range(len(client_ids))]


def _own_fleet_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet limit of this test's own: a run killed by an earlier test may still hold a
    slot of the session's until its lease expires (as it should)."""
    from flows import locks

    monkeypatch.setattr(locks, "FLEET_LIMIT", f"tenantform-fleet-{uuid.uuid4().hex[:8]}")


def test_same_client_runs_are_serialized_different_clients_overlap(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _own_fleet_limit(monkeypatch)
    monkeypatch.setenv("LOCALCLOUD_CREATE_DELAY_SECONDS", "6")
    same = str(uuid.uuid4())
    (a_start, a_end), (b_start, b_end) = _run_in_threads([same, same])
    assert a_end <= b_start or b_end <= a_start, "two runs of one client overlapped"

    (c_start, c_end), (d_start, d_end) = _run_in_threads([str(uuid.uuid4()), str(uuid.uuid4())])
    assert c_start < d_end and d_start < c_end, "runs of different clients did not overlap"


def test_a_missing_client_lock_fails_closed(prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's own lock: were the limits not created (or misnamed), the run must not
    get in without them."""
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError

    from flows import locks

    made: list[str] = []
    monkeypatch.setattr(locks, "ensure_limit", lambda name, limit: made.append(name))
    client_id = f"missing-{uuid.uuid4()}"
    name = locks.client_limit_name(client_id)
    entered = []
    with pytest.raises(locks.LockUnavailable) as info:
        with locks.client_lock(client_id, 2):
            entered.append(True)
    missing = f"concurrency limit {name!r} does not exist"
    assert str(info.value) == (
        f"could not take client {client_id}'s lock: ConcurrencySlotAcquisitionError: {missing}"
    )
    cause = info.value.__cause__
    assert type(cause) is ConcurrencySlotAcquisitionError and str(cause) == missing
    assert made == [name], "it tried to create the missing limit once, then failed closed"
    assert entered == []


def test_the_fleet_cap_holds_a_third_run_while_two_run(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.fleet_concurrency == 2
    _own_fleet_limit(monkeypatch)
    monkeypatch.setenv("LOCALCLOUD_CREATE_DELAY_SECONDS", "6")
    windows = _run_in_threads([str(uuid.uuid4()) for _ in range(3)])
    moments = sorted({t for w in windows for t in w})
    most = max(sum(start <= m < end for start, end in windows) for m in moments)
    assert most == 2, f"runs at once: {most} (windows {windows})"


def test_the_default_retry_policy_is_three_retries_five_minutes_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Airflow document's policy, read from settings (the tests shorten it by env)."""
    from flows.settings import Settings
    from flows.tasks import retrying

    monkeypatch.delenv("TASK_RETRIES")
    monkeypatch.delenv("TASK_RETRY_DELAY_SECONDS")
    assert retrying(Settings(_env_file=None)) == {"retries": 3, "retry_delay_seconds": 300}


def test_a_destroy_over_resources_already_gone_says_so(settings: Any) -> None:
    cid = str(uuid.uuid4())
    created = run("provision", cid).result()
    gone = created["outputs"]["instances"][0]["instance_id"]
    (settings.root / "localcloud" / "instances" / f"{gone}.json").unlink()
    destroyed = run("destroy", cid)
    assert destroyed.is_completed(), destroyed.message
    result = destroyed.result()
    assert result["drift"] == ["localcloud_instance.this[0]"], result
    assert result["change_summary"]["remove"] == 1
    assert "already gone outside Terraform" in result["message"]
    assert "localcloud_instance.this[0]" in result["message"]
