"""Rollouts end to end (issue 23): a real gateway (uvicorn) that the rollout flow asks over
HTTP, the session's Prefect server and worker, real Terraform on localcloud. The `local`
module is edited on disk for each case and restored after: clients stay pinned to the
revision they were built with until a rollout moves them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MODULES_DIR
from tests.support import free_port, gateway_env, http_ok, start_gateway, stop_process, wait_until

KEY = "rollout-key-0123456789"
MAIN_TF = MODULES_DIR / "local" / "main.tf"
DATA = Path(os.environ["TENANTFORM_DATA_DIR"])
FAULTS = DATA / "localcloud" / "_faults"
TERMINAL = {"completed", "failed", "cancelled"}

MARKER = """
resource "localcloud_bucket" "marker" {
  name = "${var.instance_name_prefix}-${substr(var.client_id, 0, 8)}-marker"
}
"""
"""The edit a rollout carries: one bucket more per client (create only)."""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, prefect_server: str, worker: Any) -> Iterator[httpx.Client]:
    """A gateway on a port, and the deployments told where it is (as `up` tells them)."""
    from deployments.apply import apply_deployments

    tmp = tmp_path_factory.mktemp("rollouts")
    port = free_port()
    env = {**gateway_env(tmp, prefect_server, KEY), "TENANTFORM_DATA_DIR": str(DATA)}
    proc = start_gateway(env, port, tmp / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/health"), 60, "the gateway")
        asyncio.run(apply_deployments(extra_job_env={"TENANTFORM_GATEWAY_URL": url, "API_KEY": KEY}))
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as client:
            yield client
    finally:
        asyncio.run(apply_deployments())
        stop_process(proc)
        print((tmp / "gateway.log").read_text()[-3000:])


@contextlib.contextmanager
def module_edit(old: str | None, new: str) -> Iterator[str]:
    """The `local` module edited on disk and recorded as a revision (as the gateway records
    it at start); restored after, whatever happens."""
    from flows.settings import get_settings
    from flows.terraform.revisions import revision_store

    original = MAIN_TF.read_text()
    edited = original.replace(old, new) if old is not None else original + new
    assert edited != original
    MAIN_TF.write_text(edited)
    try:
        yield revision_store(get_settings()).record("local").id
    finally:
        MAIN_TF.write_text(original)


def wait_run(gw: httpx.Client, run_id: str, timeout: float = 180) -> dict[str, Any]:
    body: dict[str, Any] = {}

    def ended() -> bool:
        nonlocal body
        body = gw.get(f"/api/runs/{run_id}").json()
        return body["status"] in TERMINAL

    wait_until(ended, timeout, f"run {run_id} to end", interval=0.5)
    return body


def fleet(
    gw: httpx.Client, suite: str, prefixes: list[str], labels: dict[int, dict[str, str]] | None = None
) -> list[str]:
    """Clients built one after another (so waves, which take the oldest first, are known),
    each labelled `suite: <suite>`: a test's waves select its own clients, not those an
    earlier test of this module left on another revision."""
    ids = []
    for n, prefix in enumerate(prefixes):
        body = {
            "cloud_provider": "local",
            "provider_config": {},
            "instance_name_prefix": prefix,
            "count": 1,
            "labels": {"suite": suite, **(labels or {}).get(n, {})},
        }
        accepted = gw.post("/provision", json=body)
        assert accepted.status_code in (200, 201, 202), accepted.text
        ids.append(gw.get(f"/api/runs/{accepted.json()['request_id']}").json()["client_uuid"])
        time.sleep(0.01)
    for cid in ids:
        last = gw.get(f"/api/clients/{cid}/runs").json()["runs"][0]
        run = wait_run(gw, last["request_id"])
        assert run["status"] == "completed", run
    return ids


def client(gw: httpx.Client, cid: str) -> dict[str, Any]:
    return dict(gw.get(f"/api/clients/{cid}/status").json())


def outputs(gw: httpx.Client, cid: str) -> dict[str, Any]:
    return dict(gw.get(f"/api/clients/{cid}/outputs").json()["outputs"])


def markers() -> set[str]:
    """Names of the marker buckets localcloud holds."""
    found = set()
    for path in (DATA / "localcloud" / "buckets").glob("*.json"):
        name = json.loads(path.read_text()).get("name", "")
        if name.endswith("-marker"):
            found.add(name)
    return found


def marker_of(prefix: str, cid: str) -> str:
    return f"{prefix}-{cid[:8]}-marker"


def wait_rollout(gw: httpx.Client, rid: str, statuses: set[str], timeout: float = 300) -> dict[str, Any]:
    view: dict[str, Any] = {}

    def there() -> bool:
        nonlocal view
        view = gw.get(f"/api/rollouts/{rid}").json()
        return view["status"] in statuses

    try:
        wait_until(there, timeout, f"rollout {rid} to be {statuses}", interval=1)
    except TimeoutError:
        raise AssertionError(json.dumps(view, indent=1)[-4000:]) from None
    return view


def steps(view: dict[str, Any]) -> dict[str, str]:
    return {c["client_id"]: c["step"] for w in view["waves"] for c in w["clients"]}


@pytest.mark.timeout(900)
def test_twenty_clients_in_three_waves(gw: httpx.Client) -> None:
    prefixes = [f"rw{n:02d}" for n in range(20)]
    ids = fleet(gw, "twenty", prefixes, {3: {"ring": "canary"}, 11: {"ring": "canary"}})
    old = client(gw, ids[0])["revision"]
    with module_edit(None, MARKER) as new:
        assert new != old
        spec = {
            "target": "local",
            "revision": new,
            "waves": [
                {"name": "canary", "labels": {"suite": "twenty", "ring": "canary"}},
                {"name": "quarter", "labels": {"suite": "twenty"}, "percent": 25, "max_parallel": 2},
                {"name": "rest", "labels": {"suite": "twenty"}},
            ],
        }
        accepted = gw.post("/api/rollouts", json=spec)
        assert accepted.status_code == 202, accepted.text
        rid = accepted.json()["rollout_id"]
        again = gw.post("/api/rollouts", json=spec)
        assert again.status_code == 409 and rid in again.json()["detail"]
        view = wait_rollout(gw, rid, {"completed", "halted", "aborted"})
    assert view["status"] == "completed", view["message"]
    sizes = [len(w["clients"]) for w in view["waves"]]
    assert sizes == [2, 5, 13], sizes
    assert {c["client_id"] for c in view["waves"][0]["clients"]} == {ids[3], ids[11]}
    assert set(steps(view).values()) == {"applied"}
    for wave in view["waves"]:
        assert wave["status"] == "done"
        for c in wave["clients"]:
            assert c["from_revision"] == old and c["to_revision"] == new
            assert [ch["action"] for ch in c["changes"]] == ["create"], c
            assert wait_run(gw, c["run_id"])["operation"] == "provision"
    some = view["waves"][0]["clients"][0]["run_id"]
    logs = "\n".join(gw.get(f"/api/runs/{some}", params={"logs": "true"}).json()["logs"])
    assert "applying the plan the rollout made" in logs, "the upgrade applied the plan the rollout checked"
    held = markers()
    for prefix, cid in zip(prefixes, ids, strict=True):
        assert client(gw, cid)["revision"] == new
        assert marker_of(prefix, cid) in held
    listed = gw.get("/api/rollouts", params={"target": "local"}).json()
    assert rid in [r["rollout_id"] for r in listed["rollouts"]]
    assert _wave_artifacts(rid) == 3


def _wave_artifacts(rid: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def count() -> int:
        async with get_client() as prefect:
            found = 0
            for n in range(3):
                key = f"rollout-{rid}-wave-{n}".lower()
                found += bool(
                    await prefect.read_artifacts(
                        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
                    )
                )
            return found

    return asyncio.run(count())


def test_a_wave_past_its_tolerance_halts_the_rollout(gw: httpx.Client) -> None:
    prefixes = ["hlt-a", "bad-b", "bad-c", "hlt-d", "hlt-e"]
    ids = fleet(gw, "halt", prefixes)
    old = client(gw, ids[0])["revision"]
    FAULTS.mkdir(parents=True, exist_ok=True)
    refuse = FAULTS / "refuse-bad-"
    refuse.touch()
    try:
        with module_edit(None, MARKER) as new:
            spec = {
                "target": "local",
                "revision": new,
                "waves": [
                    {"name": "first", "labels": {"suite": "halt"}, "count": 1},
                    {
                        "name": "second",
                        "labels": {"suite": "halt"},
                        "count": 2,
                        "failure_tolerance": {"count": 1},
                    },
                    {"name": "third", "labels": {"suite": "halt"}},
                ],
            }
            rid = gw.post("/api/rollouts", json=spec).json()["rollout_id"]
            view = wait_rollout(gw, rid, {"completed", "halted", "aborted"})
    finally:
        refuse.unlink()
    assert view["status"] == "halted", view
    assert "2 of 2" in view["message"] and "untouched" in view["message"]
    first, second, third = view["waves"]
    assert [c["step"] for c in first["clients"]] == ["applied"]
    assert [c["step"] for c in second["clients"]] == ["failed", "failed"]
    assert all("refuses" in c["reason"] for c in second["clients"]), second
    assert third["status"] == "not_started" and third["clients"] == []
    held = markers()
    assert client(gw, ids[0])["revision"] == new and marker_of(prefixes[0], ids[0]) in held
    for prefix, cid in zip(prefixes[1:], ids[1:], strict=True):
        assert client(gw, cid)["revision"] == old
        assert marker_of(prefix, cid) not in held
    assert _flow_run_state(view["flow_run_id"]) == "FAILED", "a halt fails the flow run: notifications go out"
    ended = gw.post(f"/api/rollouts/{rid}/abort")
    assert ended.status_code == 202 and ended.json()["status"] == "aborted"
    assert gw.post(f"/api/rollouts/{rid}/resume").status_code == 409


def _flow_run_state(flow_run_id: str) -> str:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    async def read() -> str:
        async with get_client() as prefect:
            run = await prefect.read_flow_run(UUID(flow_run_id))
            return run.state.type.value if run.state else ""

    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        state = asyncio.run(read())
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(1)
    return state


def test_a_plan_that_replaces_a_resource_is_not_applied(gw: httpx.Client) -> None:
    prefixes = ["rpl-a", "rpl-b"]
    ids = fleet(gw, "replace", prefixes)
    old = client(gw, ids[0])["revision"]
    before = {cid: outputs(gw, cid) for cid in ids}
    renamed = 'name  = "${var.instance_name_prefix}-node-${count.index + 1}"'
    with module_edit('name  = "${var.instance_name_prefix}-${count.index + 1}"', renamed) as new:
        spec = {
            "target": "local",
            "revision": new,
            "waves": [{"name": "all", "labels": {"suite": "replace"}}],
        }
        rid = gw.post("/api/rollouts", json=spec).json()["rollout_id"]
        view = wait_rollout(gw, rid, {"completed", "halted", "aborted"})
    assert view["status"] == "completed"
    for c in view["waves"][0]["clients"]:
        assert c["step"] == "skipped" and c["run_id"] is None
        assert "replace localcloud_instance.this[0]" in c["reason"], c
    for cid in ids:
        assert client(gw, cid)["revision"] == old
        assert outputs(gw, cid) == before[cid], "nothing was applied"


def test_manual_gate_resume_and_rollback(gw: httpx.Client) -> None:
    prefixes = ["gte-a", "gte-b", "gte-c"]
    ids = fleet(gw, "gate", prefixes)
    old = client(gw, ids[0])["revision"]
    with module_edit(None, MARKER) as new:
        spec = {
            "target": "local",
            "revision": new,
            "waves": [
                {"name": "canary", "labels": {"suite": "gate"}, "count": 1, "gate": "manual"},
                {"name": "rest", "labels": {"suite": "gate"}},
            ],
        }
        rid = gw.post("/api/rollouts", json=spec).json()["rollout_id"]
        paused = wait_rollout(gw, rid, {"paused", "completed", "halted"})
        assert paused["status"] == "paused" and "manual gate" in paused["message"], paused
        assert [c["client_id"] for c in paused["waves"][0]["clients"]] == [ids[0]]
        assert paused["waves"][1]["status"] == "not_started"
        assert client(gw, ids[1])["revision"] == old
        blocked = gw.post("/api/rollouts/" + rid + "/rollback")
        assert blocked.status_code == 409, "a paused rollout is aborted or finished before a rollback"
        resumed = gw.post(f"/api/rollouts/{rid}/resume")
        assert resumed.status_code == 202, resumed.text
        done = wait_rollout(gw, rid, {"completed", "halted", "aborted"})
    assert done["status"] == "completed", done["message"]
    assert done["attempt"] == 2
    held = markers()
    for prefix, cid in zip(prefixes, ids, strict=True):
        assert client(gw, cid)["revision"] == new and marker_of(prefix, cid) in held

    back = gw.post(f"/api/rollouts/{rid}/rollback")
    assert back.status_code == 202, back.text
    undone = wait_rollout(gw, back.json()["rollout_id"], {"completed", "halted", "aborted"})
    assert undone["status"] == "completed", undone["message"]
    assert undone["rollback_of"] == rid and undone["revision"] is None
    assert [len(w["clients"]) for w in undone["waves"]] == [1, 2]
    held = markers()
    for prefix, cid in zip(prefixes, ids, strict=True):
        assert client(gw, cid)["revision"] == old
        assert marker_of(prefix, cid) not in held, "the rollback removed what the revision added"


def test_bad_rollouts_are_refused_naming_the_field(gw: httpx.Client) -> None:
    cases = [
        ({"target": "nope", "revision": "0" * 16, "waves": [{}]}, "target"),
        ({"target": "local", "revision": "f" * 16, "waves": [{}]}, "revision"),
        ({"target": "local", "revision": "xyz", "waves": [{}]}, "revision"),
        ({"target": "local", "revision": "0" * 16, "waves": []}, "waves"),
        ({"target": "local", "revision": "0" * 16, "waves": [{"count": 1, "percent": 5}]}, "waves"),
        ({"target": "local", "revision": "0" * 16, "waves": [{"gate": "later"}]}, "waves"),
        ({"target": "local", "revision": "0" * 16, "waves": [{}], "allow": ["explode"]}, "allow"),
    ]
    before = gw.get("/api/rollouts").json()["total"]
    for body, field in cases:
        answer = gw.post("/api/rollouts", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["detail"][0]["loc"][1] == field, (body, answer.json())
    assert gw.get("/api/rollouts").json()["total"] == before
    assert gw.get("/api/rollouts/nope").status_code == 404
    assert gw.post("/api/rollouts/nope/resume").status_code == 404
