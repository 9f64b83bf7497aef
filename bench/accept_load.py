"""The accept path under an open-loop load: GET / (the cheapest authenticated route, the
baseline), POST /provision and GET /status/{request_id} interleaved at a fixed total rate
on one gateway, with its dispatcher and result sync working against a live Prefect
server (every accepted request becomes a flow run; no worker runs them).

Targets (issue 14): POST p99 within 1.5x and status p99 within 1.2x of the baseline's p99
measured in the same run. BENCH_ACCEPT_RATE (200/s), BENCH_ACCEPT_SECONDS (20)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from bench.common import pct, table
from bench.fault_matrix import KEY, Harness

RATE = float(os.environ.get("BENCH_ACCEPT_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_ACCEPT_SECONDS", "20"))
BODY = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "load", "count": 1}


class Connections:
    """Keep-alive HTTP/1.1 connections over raw asyncio streams: the load generator shares
    the machine with the gateway, so it must cost far less per request than the gateway
    does (httpx cost about as much, and the gateway's latencies measured the generator)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.idle:
            try:  # the server may have closed an idle one (uvicorn's keep-alive is 5 s)
                return await self._exchange(self.idle.pop(), raw)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
        self.opened += 1
        return await self._exchange(await asyncio.open_connection("127.0.0.1", self.port), raw)

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes
    ) -> tuple[int, bytes]:
        reader, writer = conn
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length) if length else b""
        self.idle.append(conn)
        return int(head[9:12]), body

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def http(method: str, path: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"X-API-Key: {KEY}"]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(port: int, gateway_pid: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Requests start on the clock whatever came back (open loop), and each latency counts
    from the moment its request was due: a slow answer can neither slow the offered load
    nor hide the wait of the requests queued behind it."""
    kinds = ("GET / (baseline)", "POST /provision", "GET /status/{id}")
    latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
    accepted: list[bytes] = []
    failures = 0
    pool = Connections(port)
    post = http("POST", "/provision", json.dumps(BODY).encode())
    root = http("GET", "/")
    await pool.request(post)  # warm-up: first registry write, first dispatch

    async def one(kind: str, due: float) -> None:
        nonlocal failures
        if kind == "POST /provision":
            raw = post
        elif kind == "GET /status/{id}" and accepted:
            raw = http("GET", f"/status/{accepted[-1].decode()}")
        else:
            raw = root
        try:
            status, body = await pool.request(raw)
        except (OSError, asyncio.IncompleteReadError):
            failures += 1
            return
        if status >= 300:
            failures += 1
            return
        latencies[kind].append(time.perf_counter() - due)
        if kind == "POST /provision":
            accepted.append(json.loads(body)["request_id"].encode())

    tasks = []
    cpu_before, start = cpu_seconds(gateway_pid), time.perf_counter()
    for i in range(int(RATE * SECONDS)):
        due = start + i / RATE
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(kinds[i % 3], due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    facts = {
        "achieved requests/s": sum(map(len, latencies.values())) / elapsed,
        "gateway CPU (cores)": (cpu_seconds(gateway_pid) - cpu_before) / elapsed,
        "connections": pool.opened,
        "failed": failures,
    }
    pool.close()
    return latencies, facts


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
            latencies, facts = asyncio.run(load(h.gateway_port, h.procs["gateway"].pid))
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
    print(", ".join(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in facts.items()))


if __name__ == "__main__":
    main()
