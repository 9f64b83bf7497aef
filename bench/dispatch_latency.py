"""Dispatch latency: accept -> flow run RUNNING -> `terraform init` started, p50/p95 over
N sequential requests, with Prefect's defaults (worker polling, process launch) next to
the stack's tuned settings. Each mode runs in its own process (its own stack) and reports JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import pct, stack, table

LABELS = {
    "default": "Prefect defaults (10 s poll, workspace supervisor)",
    "tuned": "tenantform up (1 s poll, engine command)",
}
REQUEST = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "lat", "count": 1}


async def _flow_run_start(flow_run_id: str) -> float:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(UUID(flow_run_id))
    assert run.start_time is not None
    return run.start_time.timestamp()


async def _drop_engine_command() -> None:
    """Prefect's default launch: no engine command on the deployments, so the process
    worker starts its workspace supervisor, which starts the engine."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    from flows.workflows import workflows

    async with get_client() as client:
        for entry in workflows().values():
            deployment = await client.read_deployment_by_name(entry.deployment_name)
            await client.update_deployment(deployment.id, DeploymentUpdate(job_variables={}))


def measure(mode: str, n: int) -> dict[str, Any]:
    to_running: list[float] = []
    to_init: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp), tuned=mode == "tuned") as running:
        if mode == "default":
            asyncio.run(_drop_engine_command())
        cfg = running.config
        gateway = httpx.Client(base_url=cfg.gateway_url, headers={"X-API-Key": cfg.api_key or ""}, timeout=30)
        for _ in range(n):
            accepted_at = time.time()
            request_id = gateway.post("/provision", json=REQUEST).json()["request_id"]
            while gateway.get(f"/status/{request_id}").json()["status"] == "in_progress":
                time.sleep(0.2)
            run = gateway.get(f"/api/runs/{request_id}").json()
            init = next(t for t in run["tasks"] if t["name"].startswith("terraform-init"))
            from datetime import datetime

            to_running.append(asyncio.run(_flow_run_start(run["flow_run_id"])) - accepted_at)
            to_init.append(datetime.fromisoformat(init["start_time"]).timestamp() - accepted_at)
    return {"mode": mode, "to_running": to_running, "to_init": to_init}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["default", "tuned"])
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(measure(args.mode, args.n)), flush=True)
        return
    results = {}
    for mode in ("default", "tuned"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.dispatch_latency", "--mode", mode, "-n", str(args.n)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
        results[mode] = json.loads(line.removeprefix("RESULT "))
    rows = [
        (
            LABELS[mode],
            f"{pct(r['to_running'], 50):.2f}",
            f"{pct(r['to_running'], 95):.2f}",
            f"{pct(r['to_init'], 50):.2f}",
            f"{pct(r['to_init'], 95):.2f}",
        )
        for mode, r in results.items()
    ]
    print(
        table(
            f"dispatch latency over {args.n} requests (seconds)",
            rows,
            ("worker settings", "RUNNING p50", "RUNNING p95", "init p50", "init p95"),
        )
    )


if __name__ == "__main__":
    main()
