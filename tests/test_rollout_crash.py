"""A rollout whose worker is SIGKILLed mid-wave (the rollout's flow run and a client's
upgrade run die with it), then started again: Prefect's missed-heartbeat automation
crashes both runs, the gateway ends the upgrade run failed and halts the rollout with the
rest of the wave held; a resume carries it to the end. Own Prefect server, worker and
gateway (the worker is killed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.processes import descendants
from tests.conftest import MODULES_DIR
from tests.support import (
    free_port,
    gateway_env,
    http_ok,
    start_gateway,
    start_prefect_server,
    start_worker,
    stop_process,
    wait_until,
)

KEY = "rollout-crash-key-0123456789"
pytestmark = pytest.mark.timeout(1200)  # two missed-heartbeat bounds and a second leg, on a loaded machine
MAIN_TF = MODULES_DIR / "local" / "main.tf"
MARKER = '\nresource "localcloud_bucket" "marker" {\n  name = "${var.instance_name_prefix}-marker"\n}\n'


def _view(gateway: httpx.Client, rid: str) -> dict[str, Any]:
    return dict(gateway.get(f"/api/rollouts/{rid}").json())


def _steps(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["step"], c["reason"]) for w in view["waves"] for c in w["clients"]]


def test_worker_killed_mid_wave_then_started_again(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.apply import apply_deployments, ensure_zombie_automation
    from flows.settings import Settings
    from flows.terraform.revisions import revision_store

    prefect_port, port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    env = {
        **gateway_env(tmp_path, api_url, KEY),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "TENANTFORM_GATEWAY_URL": f"http://127.0.0.1:{port}",
    }
    data = Path(env["TENANTFORM_DATA_DIR"])
    home = tmp_path / "prefect"
    home.mkdir()
    server = start_prefect_server(home, prefect_port)
    worker = gateway_proc = None
    original = MAIN_TF.read_text()
    try:
        wait_until(lambda: http_ok(f"{api_url}/health"), 180, "the Prefect server")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            asyncio.run(apply_deployments())
            asyncio.run(ensure_zombie_automation(within_seconds=45))
        worker = start_worker(env, tmp_path / "worker.log")
        gateway_proc = start_gateway(env, port, tmp_path / "gateway.log")
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=10)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 60, "the gateway")
        ids = []
        for prefix in ("crash-a", "crash-b", "crash-c"):
            body = {"cloud_provider": "local", "instance_name_prefix": prefix, "count": 1}
            run_id = gateway.post("/provision", json=body).json()["request_id"]
            wait_until(
                lambda r=run_id: gateway.get(f"/status/{r}").json()["status"] != "in_progress", 180, "a build"
            )
            assert gateway.get(f"/status/{run_id}").json()["status"] == "completed"
            ids.append(gateway.get(f"/api/runs/{run_id}").json()["client_uuid"])
        old = gateway.get(f"/api/clients/{ids[0]}/status").json()["revision"]

        MAIN_TF.write_text(original + MARKER)
        new = revision_store(Settings(data_dir=data)).record("local").id
        MAIN_TF.write_text(original)
        faults = data / "localcloud" / "_faults"
        faults.mkdir(parents=True, exist_ok=True)
        (faults / "delay-crash-a-marker").write_text("600")  # the first upgrade hangs in its apply
        spec = {
            "target": "local",
            "revision": new,
            "waves": [{"max_parallel": 1, "failure_tolerance": {"count": 1}}],
        }
        rid = gateway.post("/api/rollouts", json=spec).json()["rollout_id"]
        wait_until(lambda: ("applying", "") in _steps(_view(gateway, rid)), 240, "the first upgrade run")
        first_run = _view(gateway, rid)["waves"][0]["clients"][0]["run_id"]
        wait_until(
            lambda: any(
                t["name"].startswith("terraform-apply")
                for t in gateway.get(f"/api/runs/{first_run}").json().get("tasks") or []
            ),
            120,
            "the upgrade's apply to start",
        )
        for pid in [worker.pid, *descendants(worker.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=10)

        wait_until(lambda: _view(gateway, rid)["status"] != "running", 240, "the rollout to halt")
        halted = _view(gateway, rid)
        assert halted["status"] == "halted", halted
        assert halted["flow_run_id"] in halted["message"] and "resume" in halted["message"]
        wait_until(
            lambda: gateway.get(f"/api/runs/{first_run}").json()["status"] != "in_progress",
            240,
            "the upgrade run to be crashed",
        )
        by_client = {c["client_id"]: c for c in _view(gateway, rid)["waves"][0]["clients"]}
        assert by_client[ids[0]]["step"] == "failed" and "heartbeat" in by_client[ids[0]]["reason"], by_client
        for cid in ids[1:]:
            assert by_client[cid]["step"] == "held" and by_client[cid]["reason"], by_client
        assert gateway.get(f"/api/clients/{ids[0]}/status").json()["revision"] == old

        (faults / "delay-crash-a-marker").unlink()
        worker = start_worker(env, tmp_path / "worker-2.log")
        assert gateway.post(f"/api/rollouts/{rid}/resume").status_code == 202
        wait_until(
            lambda: _view(gateway, rid)["status"] in ("completed", "halted", "aborted"),
            300,
            "the rollout to end",
        )
        done = _view(gateway, rid)
        assert done["status"] == "completed", done
        steps = {c["client_id"]: c["step"] for c in done["waves"][0]["clients"]}
        assert steps == {ids[0]: "failed", ids[1]: "applied", ids[2]: "applied"}, steps
        for cid in ids[1:]:
            assert gateway.get(f"/api/clients/{cid}/status").json()["revision"] == new
    finally:
        MAIN_TF.write_text(original)
        if gateway_proc is not None:
            stop_process(gateway_proc)
        if worker is not None:
            stop_process(worker, timeout=5)
        stop_process(server)
