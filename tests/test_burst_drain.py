"""A burst larger than Prefect's answer window drains (issue 25). Prefect answers at most
PREFECT_SERVER_API_DEFAULT_LIMIT (200) items a call: the worker's poll for scheduled runs
and the gateway's read of its runs' flow runs both. Here the window is 3 on a Prefect
server of the test's own, and 7 provisions are accepted at once through a gateway
(uvicorn) with one worker: every one ends completed, each with its own flow run, none
taken for deleted because the gateway's read of their flow runs was cut at the window."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import WORKER_ENV
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

WINDOW = 3
BURST = 7
KEY = "burst-key-0123456789"


def test_a_burst_larger_than_the_poll_window_drains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_SERVER_API_DEFAULT_LIMIT", str(WINDOW))
    home = tmp_path / "prefect"
    home.mkdir()
    port = free_port()
    server = start_prefect_server(home, port)
    api = f"http://127.0.0.1:{port}/api"
    procs: list[subprocess.Popen[bytes]] = []
    workers: list[subprocess.Popen[bytes]] = []
    try:
        wait_until(lambda: http_ok(f"{api}/health"), 300, "the burst test's Prefect server")
        env = {**gateway_env(tmp_path, api, KEY), **WORKER_ENV}
        apply = "import asyncio, deployments.apply as a; asyncio.run(a.apply_deployments())"
        subprocess.run([sys.executable, "-c", apply], env=env, check=True, timeout=300, capture_output=True)
        workers.append(start_worker(env, tmp_path / "worker.log"))
        gport = free_port()
        procs.append(start_gateway(env, gport, tmp_path / "gateway.log"))
        url = f"http://127.0.0.1:{gport}"
        wait_until(lambda: http_ok(f"{url}/health"), 60, "the gateway")
        gateway = httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30)

        body = {"cloud_provider": "local", "provider_config": {}, "count": 1}
        accepted = [
            gateway.post("/provision", json={**body, "instance_name_prefix": f"burst-{i}"}).json()
            for i in range(BURST)
        ]
        ids = [a["request_id"] for a in accepted]
        deadline = time.monotonic() + 420
        runs: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline:
            runs = {i: gateway.get(f"/api/runs/{i}").json() for i in ids}
            if all(r["status"] in ("completed", "failed", "cancelled") for r in runs.values()):
                break
            time.sleep(2)
        assert {i: r["status"] for i, r in runs.items()} == dict.fromkeys(ids, "completed"), [
            (r["status"], r.get("message")) for r in runs.values()
        ]
        flow_runs = [r["flow_run_id"] for r in runs.values()]
        assert len(set(flow_runs)) == BURST, "one flow run each, none twice"
        clients = gateway.get("/api/clients", params={"status": "ready"}).json()
        assert clients["total"] == BURST, clients
    finally:
        for worker in workers:
            stop_worker(worker)
        for proc in procs:
            stop_process(proc)
        stop_process(server)
