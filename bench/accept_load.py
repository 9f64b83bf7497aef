"""Accept path under concurrent load: POST /provision and GET /status/{id}, next to the
gateway's cheapest authenticated route (GET /) as the baseline of the same run.

The Prefect server is deliberately absent: accepting must never wait on Prefect, so
this measures the gateway and its registry alone (the dispatcher keeps retrying in the
background, as it would during an outage)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import free_port, pct, table

KEY = "bench-key-0123456789"
BODY = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "load", "count": 1}


async def hammer(
    client: httpx.AsyncClient, method: str, paths: list[str], concurrency: int
) -> tuple[list[float], float, list[Any]]:
    latencies: list[float] = []
    bodies: list[Any] = []
    queue = list(paths)

    async def worker() -> None:
        while queue:
            path = queue.pop()
            started = time.perf_counter()
            response = await (client.post(path, json=BODY) if method == "POST" else client.get(path))
            assert response.status_code < 300, response.text
            latencies.append(time.perf_counter() - started)
            bodies.append(response.json())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, bodies


async def run(base: str, n: int, concurrency: int) -> list[tuple[str, ...]]:
    rows = []
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as client:
        lat, wall, _ = await hammer(client, "GET", ["/"] * n, concurrency)
        rows.append(("GET / (baseline)", lat, wall))
        lat, wall, accepted = await hammer(client, "POST", ["/provision"] * n, concurrency)
        rows.append(("POST /provision", lat, wall))
        paths = [f"/status/{a['request_id']}" for a in accepted]
        lat, wall, _ = await hammer(client, "GET", paths, concurrency)
        rows.append(("GET /status/{request_id}", lat, wall))
        listing = (await client.get("/api/clients", params={"limit": 1000})).json()["clients"]
        ids = [c["client_uuid"] for c in listing]
        lat, wall, _ = await hammer(client, "GET", [f"/api/clients/{i}/status" for i in ids], concurrency)
        rows.append(("GET /api/clients/{id}/status", lat, wall))
    return [
        (
            name,
            str(len(lat)),
            f"{pct(lat, 50) * 1000:.1f}",
            f"{pct(lat, 99) * 1000:.1f}",
            f"{len(lat) / wall:.0f}",
        )
        for name, lat, wall in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "API_KEY": KEY,
            "TENANTFORM_DATA_DIR": tmp,
            "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
            "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
            "RATE_LIMIT_PER_SECOND": "0",  # measuring the path, not the limiter
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=open(Path(tmp) / "gw.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/health").status_code in (200, 503):
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            rows = asyncio.run(run(base, args.n, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(
        table(
            f"gateway under load: {args.n} requests, {args.concurrency} concurrent, one uvicorn worker",
            rows,
            ("route", "requests", "p50 ms", "p99 ms", "req/s"),
        )
    )


if __name__ == "__main__":
    main()
