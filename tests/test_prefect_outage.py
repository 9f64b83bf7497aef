"""Requests accepted while the Prefect server is down run once it is back: none lost,
none run twice. The gateway is a real uvicorn process, Prefect a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

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

KEY = "outage-key-0123456789"


def test_requests_accepted_during_an_outage_run_exactly_once(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.apply import apply_deployments

    prefect_port, port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    env = gateway_env(tmp_path, api_url, KEY)
    gateway_proc = start_gateway(env, port, tmp_path / "gateway.log")
    server = worker = None
    try:
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=10)
        wait_until(lambda: gateway.get("/health").status_code in (200, 503), 60, "the gateway")
        health = gateway.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"]["registry"] == "ok"
        assert health.json()["checks"]["prefect"].startswith("down")

        ids = [
            gateway.post(
                "/provision",
                json={"cloud_provider": "local", "instance_name_prefix": f"outage{i}", "count": 1},
            ).json()["request_id"]
            for i in range(3)
        ]
        wait_until(
            lambda: "waiting for Prefect" in gateway.get(f"/status/{ids[0]}").json()["message"],
            30,
            "a dispatch attempt",
        )
        assert {gateway.get(f"/status/{i}").json()["status"] for i in ids} == {"in_progress"}

        home = tmp_path / "prefect"
        home.mkdir()
        server = start_prefect_server(home, prefect_port)
        wait_until(lambda: http_ok(f"{api_url}/health"), 180, "the Prefect server")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            asyncio.run(apply_deployments())
        worker = start_worker(env, tmp_path / "worker.log")

        wait_until(
            lambda: all(gateway.get(f"/status/{i}").json()["status"] != "in_progress" for i in ids),
            240,
            "the three requests",
        )
        assert [gateway.get(f"/status/{i}").json()["status"] for i in ids] == ["completed"] * 3

        async def flow_runs() -> list[list[str]]:
            async with get_client() as client:
                return [r.tags for r in await client.read_flow_runs()]

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            tags = asyncio.run(flow_runs())
        per_request = [sum(f"run:{i}" in t for t in tags) for i in ids]
        assert per_request == [1, 1, 1], tags
    finally:
        if worker is not None:
            stop_worker(worker)
        if server is not None:
            stop_process(server)
        stop_process(gateway_proc)
