"""A worker that dies together with its flow run: nobody is left to report the end, so
Prefect's missed-heartbeat automation (applied by `tenantform up`) crashes the run and
the request ends `failed` with that reason. Own Prefect server, worker and gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import httpx

from deployments.processes import descendants
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

KEY = "zombie-key-0123456789"


def test_run_of_a_killed_worker_ends_failed_with_reason(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.apply import apply_deployments, ensure_zombie_automation

    prefect_port, port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    env = {
        **gateway_env(tmp_path, api_url, KEY),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "LOCALCLOUD_CREATE_DELAY_SECONDS": "300",
    }
    home = tmp_path / "prefect"
    home.mkdir()
    server = start_prefect_server(home, prefect_port)
    worker = gateway_proc = None
    try:
        wait_until(lambda: http_ok(f"{api_url}/health"), 180, "the Prefect server")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            asyncio.run(apply_deployments())
            asyncio.run(ensure_zombie_automation(within_seconds=45))
        worker = start_worker(env, tmp_path / "worker.log")
        gateway_proc = start_gateway(env, port, tmp_path / "gateway.log")
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=10)
        wait_until(lambda: gateway.get("/health").status_code == 200, 60, "the gateway")
        request_id = gateway.post(
            "/provision", json={"cloud_provider": "local", "instance_name_prefix": "doomed", "count": 1}
        ).json()["request_id"]
        wait_until(
            lambda: any(
                t["name"].startswith("terraform-apply")
                for t in gateway.get(f"/api/runs/{request_id}").json().get("tasks") or []
            ),
            120,
            "terraform-apply to start",
        )
        for pid in [worker.pid, *descendants(worker.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=10)
        wait_until(
            lambda: gateway.get(f"/status/{request_id}").json()["status"] != "in_progress",
            180,
            "the automation to crash the run",
        )
        status = gateway.get(f"/status/{request_id}").json()
        assert status["status"] == "failed", status
        assert "heartbeat" in status["message"], status
    finally:
        if gateway_proc is not None:
            stop_process(gateway_proc)
        if worker is not None:
            stop_process(worker, timeout=5)
        stop_process(server)
