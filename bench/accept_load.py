"""The accept path under an open-loop load: GET / (the cheapest authenticated route, the
baseline), POST /provision and GET /status/{request_id} interleaved at a fixed total rate
on one gateway, with its dispatcher and result sync working against a live Prefect
server (every accepted request becomes a flow run; no worker runs them).

Targets (issue 14): POST p99 within 1.5x and status p99 within 1.2x of the baseline's p99
measured in the same run. BENCH_ACCEPT_RATE (200/s), BENCH_ACCEPT_SECONDS (20)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import pct, table
from bench.fault_matrix import KEY, Harness

RATE = float(os.environ.get("BENCH_ACCEPT_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_ACCEPT_SECONDS", "20"))
BODY = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "load", "count": 1}


async def load(base: str) -> dict[str, list[float]]:
    """Requests start on the clock whatever came back (open loop): a slow answer cannot
    slow the offered load, so queueing shows in the latencies."""
    kinds = ("GET / (baseline)", "POST /provision", "GET /status/{id}")
    latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
    accepted: list[str] = []
    failures = 0
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    headers = {"X-API-Key": KEY}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:
        await client.post("/provision", json=BODY)  # warm-up: first registry write, first dispatch

        async def one(i: int) -> None:
            nonlocal failures
            kind = kinds[i % 3]
            started = time.perf_counter()
            if kind == "POST /provision":
                response = await client.post("/provision", json=BODY)
            elif kind == "GET /status/{id}" and accepted:
                response = await client.get(f"/status/{accepted[-1]}")
            else:
                response = await client.get("/")
            elapsed = time.perf_counter() - started
            if response.status_code >= 300:
                failures += 1
                return
            latencies[kind].append(elapsed)
            if kind == "POST /provision":
                accepted.append(response.json()["request_id"])

        tasks = []
        start = time.perf_counter()
        for i in range(int(RATE * SECONDS)):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    if failures:
        print(f"{failures} requests failed", file=sys.stderr)
    return latencies


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        h = Harness(Path(tmp))
        try:
            h.start("prefect")
            from prefect.settings import PREFECT_API_URL, temporary_settings

            from deployments.apply import set_up_prefect

            with temporary_settings(updates={PREFECT_API_URL: h.api}):
                asyncio.run(set_up_prefect())
            h.start("gateway")
            latencies = asyncio.run(load(f"http://127.0.0.1:{h.gateway_port}"))
        finally:
            h.stop()
    base99 = pct(latencies["GET / (baseline)"], 99)
    rows = [
        (
            name,
            str(len(lat)),
            f"{pct(lat, 50) * 1000:.1f}",
            f"{pct(lat, 99) * 1000:.1f}",
            f"{pct(lat, 99) / base99:.2f}x",
        )
        for name, lat in latencies.items()
    ]
    title = f"accept path: {RATE:.0f} requests/s for {SECONDS:.0f} s, open loop, dispatcher on a live Prefect"
    print(table(title, rows, ("route", "requests", "p50 ms", "p99 ms", "p99 vs baseline")))


if __name__ == "__main__":
    main()
