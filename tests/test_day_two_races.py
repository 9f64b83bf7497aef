"""Day two under contention, with the session worker, real Terraform and localcloud: PATCH,
retry and DELETE of one client fired at once; a PATCH while an apply runs; an approval
refused to a read-only key; a DELETE while a run awaits approval. The order of runs is read
from Prefect's own flow-run start and end times. The same burst against the registry alone,
on SQLite and on the machine's PostgreSQL, many times over."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.test_day_two import (
    TERMINAL,
    _awaiting,
    _wait_for_task,
    instance_ids,
    provisioned,
    request,
    wait_run,
)

LOCALCLOUD = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud"


def armed(kind: str, prefix: str, value: str = "") -> Path:
    """A localcloud fault for objects named ``prefix*`` (infrastructure/localcloud/faults.py)."""
    faults = LOCALCLOUD / "_faults"
    faults.mkdir(parents=True, exist_ok=True)
    marker = faults / f"{kind}-{prefix}"
    marker.write_text(value)
    return marker


def instances_of(client_id: str) -> list[str]:
    """The client's instances as localcloud holds them (tagged by the module)."""
    found = []
    for path in (LOCALCLOUD / "instances").glob("*.json"):
        stored = json.loads(path.read_text())
        if (stored.get("tags") or {}).get("client") == client_id:
            found.append(stored["name"])
    return sorted(found)


def flow_run_spans(flow_run_ids: list[str]) -> dict[str, tuple[datetime, datetime, str]]:
    """Start, end and state of each flow run, as Prefect recorded them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(i) for i in flow_run_ids])),
            limit=len(flow_run_ids) + 1,
        )
    spans = {}
    for run in runs:
        assert run.start_time and run.end_time and run.state_type, (run.name, run.state_type)
        spans[str(run.id)] = (run.start_time, run.end_time, run.state_type.value)
    return spans


def assert_one_after_another(spans: list[tuple[datetime, datetime, str]]) -> None:
    ordered = sorted(spans)
    for before, after in itertools.pairwise(ordered):
        assert after[0] >= before[1], f"runs of one client overlapped: {before} and {after}"


@pytest.mark.usefixtures("worker")
def test_patch_retry_and_delete_fired_at_once_end_consistent(gateway: Any) -> None:
    # A client whose last run was cancelled: a retry is one of the things it may be asked.
    first = gateway.post("/provision", json=request("racing-a")).json()["request_id"]
    assert gateway.post(f"/api/runs/{first}/cancel").status_code == 200
    ended_first = wait_run(gateway, first)
    assert ended_first["status"] == "cancelled", ended_first
    cid = ended_first["client_uuid"]

    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("PATCH", f"/api/clients/{cid}", {"count": 2}),
        ("PATCH", f"/api/clients/{cid}", {"instance_name_prefix": "racing-b"}),
        ("POST", f"/api/clients/{cid}/retry", None),
        ("DELETE", f"/api/clients/{cid}", None),
        ("PATCH", f"/api/clients/{cid}", {"count": 3}),
        ("POST", f"/api/clients/{cid}/retry", None),
    ]
    barrier = threading.Barrier(len(calls))

    def fire(call: tuple[str, str, dict[str, Any] | None]) -> Any:
        method, path, body = call
        barrier.wait()
        return gateway.request(method, path, json=body)

    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(fire, calls))

    for (method, path, _), answer in zip(calls, answers, strict=True):
        assert answer.status_code in (202, 409), (method, path, answer.status_code, answer.text)
        if answer.status_code == 409:
            assert isinstance(answer.json()["detail"], str) and answer.json()["detail"], answer.text
    by_call = dict(zip(range(len(calls)), answers, strict=True))
    assert by_call[3].status_code == 202, "a DELETE of a live client is always accepted"
    retries = [by_call[2], by_call[5]]
    assert sum(r.status_code == 202 for r in retries) <= 1, "one ended run is retried once"
    for refused in (a for a in answers if a.status_code == 409):
        assert any(
            word in refused.json()["detail"] for word in ("destroy", "only a failed or cancelled run")
        ), refused.text
    accepted = [a.json()["request_id"] for a in answers if a.status_code == 202]
    assert len(set(accepted)) == len(accepted), "each accepted request is its own run"

    ended = {run_id: wait_run(gateway, run_id, timeout=300) for run_id in accepted}
    assert all(r["status"] == "completed" for r in ended.values()), ended

    history = gateway.get(f"/api/clients/{cid}/runs").json()
    assert history["total"] == 1 + len(accepted), "no run but the accepted ones"
    assert {r["request_id"] for r in history["runs"]} == {first, *accepted}
    assert all(r["status"] in TERMINAL for r in history["runs"])
    runs = sorted((r for r in history["runs"] if r["request_id"] != first), key=lambda r: r["created_at"])
    assert runs[-1]["operation"] == "destroy", f"nothing runs after the destroy: {runs}"
    flow_runs = [r["flow_run_id"] for r in runs]
    assert all(flow_runs) and len(set(flow_runs)) == len(flow_runs), "one flow run per run"

    spans = flow_run_spans(flow_runs)
    assert len(spans) == len(flow_runs)
    assert_one_after_another(list(spans.values()))
    by_start = sorted(flow_runs, key=lambda f: spans[f][0])
    assert by_start == flow_runs, "Prefect ran them in the order they were accepted"

    client = gateway.get(f"/api/clients/{cid}/status").json()
    assert client["status"] == "destroyed", client
    assert instances_of(cid) == [], "the destroy, run last, left nothing behind"
    assert gateway.patch(f"/api/clients/{cid}", json={"count": 4}).status_code == 409


@pytest.mark.usefixtures("worker")
def test_a_patch_while_an_apply_runs_is_applied_after_it(gateway: Any) -> None:
    pace = armed("delay", "racepace-", "5")  # read by the first run's create only
    try:
        first = gateway.post("/provision", json=request("racepace-a")).json()["request_id"]
        _wait_for_task(gateway, first, "terraform-apply")
        cid = gateway.get(f"/api/runs/{first}").json()["client_uuid"]
        patched = gateway.patch(f"/api/clients/{cid}", json={"count": 2})
        assert patched.status_code == 202, patched.text
        assert gateway.get(f"/api/runs/{first}").json()["status"] == "in_progress", "the apply still runs"
        second = patched.json()["request_id"]
        queued = gateway.get(f"/api/runs/{second}").json()
        assert queued["status"] == "accepted" and queued["flow_run_id"] is None, queued
    finally:
        pace.unlink()
    done_first, done_second = wait_run(gateway, first), wait_run(gateway, second)
    assert done_first["status"] == "completed", done_first
    assert done_second["status"] == "completed", done_second

    spans = flow_run_spans([done_first["flow_run_id"], done_second["flow_run_id"]])
    assert spans[done_second["flow_run_id"]][0] >= spans[done_first["flow_run_id"]][1], spans
    assert done_first["result"]["change_summary"]["add"] == 1
    summary = done_second["result"]["change_summary"]
    assert (summary["add"], summary["change"], summary["remove"]) == (1, 0, 0), summary
    assert gateway.get(f"/api/clients/{cid}/status").json()["inputs"]["count"] == 2
    assert instances_of(cid) == ["racepace-a-1", "racepace-a-2"]
    assert len(instance_ids(gateway, cid)) == 2


@pytest.mark.usefixtures("worker")
def test_an_awaiting_run_refuses_a_read_only_approval_and_is_cancelled_by_a_delete(gateway: Any) -> None:
    cid = provisioned(gateway, "raceawait")
    run_id = _awaiting(gateway, cid, {"count": 2})

    reader = gateway.post("/api/keys", json={"name": "race-reader", "scope": "read"}).json()
    refused = gateway.post(f"/api/runs/{run_id}/approve", headers={"X-API-Key": reader["key"]})
    assert refused.status_code == 403 and "write needed" in refused.json()["detail"], refused.text
    time.sleep(1.5)  # a few dispatcher passes: nothing moves the run on
    still = gateway.get(f"/api/runs/{run_id}").json()
    assert still["status"] == "awaiting_approval", still
    flow_run = still["flow_run_id"]
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert client.read_flow_run(uuid.UUID(flow_run)).state_type.value == "PAUSED"

    gone = gateway.delete(f"/api/clients/{cid}")
    assert gone.status_code == 202, gone.text
    destroy_id = gone.json()["request_id"]
    cancelled = wait_run(gateway, run_id)
    assert cancelled["status"] == "cancelled", cancelled
    assert "destroy" in cancelled["message"] and destroy_id in cancelled["message"], cancelled
    destroyed = wait_run(gateway, destroy_id)
    assert destroyed["status"] == "completed", destroyed
    assert destroyed["result"]["change_summary"]["remove"] == 1, "the plan's new instance was never applied"

    spans = flow_run_spans([flow_run, destroyed["flow_run_id"]])
    assert spans[flow_run][2] == "CANCELLED"
    assert spans[destroyed["flow_run_id"]][0] >= spans[flow_run][1], "the destroy ran after the cancel"
    assert gateway.get(f"/api/clients/{cid}/status").json()["status"] == "destroyed"
    assert instances_of(cid) == []
    assert gateway.post(f"/api/runs/{run_id}/approve").status_code == 409


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    import psycopg

    pg, name = "postgresql://postgres@127.0.0.1:5432", f"tenantform_race_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_requests_on_one_client_take_turns_in_the_registry(registry_url: str) -> None:
    """Without the worker: what each burst accepts is only what a serial order would."""
    from api.clients.service import ClientService
    from api.errors import Conflict
    from api.registry.db import Registry
    from api.registry.models import InvalidTransition
    from api.runs.service import RunService
    from flows.contract import Operation

    registry = Registry(registry_url)
    registry.migrate()
    service, runs_of_clients = ClientService(registry), RunService(registry)
    try:
        for round_ in range(8):
            inputs = {"cloud_provider": "local", "instance_name_prefix": f"turns-{round_}", "count": 1}
            created = service.create_client(kind="instances", target="local", inputs=inputs)
            cid = created.client.id
            runs_of_clients.cancel(created.run.id, "so that it may be retried")
            asks = [
                lambda: service.retry(cid),
                lambda: service.update_client(cid, {"count": 2}),
                lambda: service.start_operation(cid, Operation.destroy),
                lambda: service.retry(cid),
                lambda: service.update_client(cid, {"count": 3}),
                lambda: service.start_operation(cid, Operation.destroy),
            ]
            barrier = threading.Barrier(len(asks))

            def ask(call: Any) -> str:
                barrier.wait()
                try:
                    accepted = call()
                except (Conflict, InvalidTransition) as exc:
                    assert str(exc)
                    return "refused"
                return str(accepted.run.id)

            with ThreadPoolExecutor(len(asks)) as pool:
                answers = list(pool.map(ask, asks))
            retried = [a for a in answers[0::3] if a != "refused"]
            assert len(retried) <= 1, f"round {round_}: one cancelled run retried twice: {answers}"
            assert answers[2] == answers[5] != "refused", "both DELETEs answer with the one destroy"
            runs, total = runs_of_clients.runs_of(cid, limit=20, offset=0)
            accepted = {a for a in answers if a != "refused"}
            assert total == 1 + len(accepted), (round_, answers)
            newest = runs[0]
            assert newest.operation == Operation.destroy and newest.id == answers[2], (
                f"round {round_}: a run was accepted after the destroy: {[(r.operation, r.id) for r in runs]}"
            )
    finally:
        registry.dispose()
