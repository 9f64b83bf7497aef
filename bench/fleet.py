"""A fleet on PostgreSQL as in the scale-out recipe (docs/how-to/scale-out.md): a Prefect
server, `tenantform deploy`, the gateway alone and 1, 2 then 3 `tenantform worker`s, the
registry, Terraform state and localcloud in PostgreSQL; localcloud answers each read and
write of a resource after ``--latency`` seconds (LOCALCLOUD_API_LATENCY_SECONDS: a cloud's
API round trip). In one run, side by side:

- a burst of ``--burst`` provisions accepted at once: time to drain (all completed) and CPU
  seconds per run of the Prefect server, the gateway and the workers with their runs;
- a sweep of ``--clients`` `local` clients in shards (``SWEEP_SHARD_SIZE``: a sixth of the
  clients, so three workers have shards to share): wall time;
- ``--registry`` clients straight into the registry: GET /api/clients p50/p99 per filter,
  GET /metrics, POST /provision next to GET /health (trivial) on the same gateway.

Defaults finish in minutes on two cores; ``--clients 1000`` is the issue's figure."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import free_port, pct, table
from bench.list_clients import seed
from deployments.lifeline import descendants

PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
TERMINAL = ("completed", "failed", "cancelled")


def _driver(name: str) -> str:
    return PG.replace("postgresql://", f"postgresql+{name}://", 1)


def cpu_seconds(pid: int) -> float:
    """CPU of a process and its descendants, the ended ones (reaped) included."""
    total = 0
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


class Fleet:
    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.root, self.args = root, args
        self.db = f"tf_fleet_{uuid.uuid4().hex[:8]}"
        self.key = "bench-fleet-key"
        self.prefect_port, self.gateway_port = free_port(), free_port()
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        state = f"{PG}/{self.db}?sslmode=disable"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "TENANTFORM_", "API_", "DATABASE_", "LOCALCLOUD_"))
        }
        env.update(
            PREFECT_API_URL=f"http://127.0.0.1:{self.prefect_port}/api",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_HOME=str(root / "prefect-home"),
            STATE_BACKEND="pg",
            STATE_PG_CONN_STR=state,
            LOCALCLOUD_DATABASE_URL=state,
            LOCALCLOUD_API_LATENCY_SECONDS=str(args.latency),
            API_KEY=self.key,
            TENANTFORM_GATEWAY_URL=self.gateway_url,
            TENANTFORM_DATA_DIR=str(root / "gateway"),
            MODULE_REVISIONS_DIR=str(root / "revisions"),  # recorded by the gateway, read by workers
            FLEET_CONCURRENCY=str(args.fleet_concurrency),
            LOG_FORMAT="text",
        )
        self.env = env
        self.server: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def _start(self, argv: list[str], log: str, **extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            env={**self.env, **extra},
            stdout=open(self.root / log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> Fleet:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
            conn.execute(f'CREATE DATABASE "{self.db}_prefect"')
        self.server = self._start(
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.prefect_port),
            ],
            "server.log",
            PREFECT_API_DATABASE_CONNECTION_URL=f"{_driver('asyncpg')}/{self.db}_prefect",
            PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="prefect.server.concurrency.lease_storage.filesystem",
            PREFECT_SERVER_API_DEFAULT_LIMIT=str(self.args.window),
            PREFECT_UI_ENABLED="false",
        )
        _wait_http(f"{self.env['PREFECT_API_URL']}/health", 300)
        subprocess.run([str(BIN / "tenantform"), "deploy"], env=self.env, check=True, capture_output=True)
        self.gateway = self._start(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(self.gateway_port)],
            "gateway.log",
            DATABASE_URL=f"{_driver('psycopg')}/{self.db}",
            RATE_LIMIT_PER_SECOND="0",
        )
        _wait_http(f"{self.gateway_url}/health", 120)
        return self

    def __exit__(self, *exc: object) -> None:
        import psycopg

        for proc in [*self.workers, self.gateway, self.server]:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
        for proc in [*self.workers, self.gateway, self.server]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            for name in (self.db, f"{self.db}_prefect"):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def scale_to(self, workers: int) -> None:
        while len(self.workers) < workers:
            n = len(self.workers) + 1
            self.workers.append(
                self._start(
                    [str(BIN / "tenantform"), "worker", "--limit", str(self.args.worker_limit)],
                    f"worker-{n}.log",
                    TENANTFORM_DATA_DIR=str(self.root / f"worker-{n}"),
                )
            )
        time.sleep(10)  # the workers' checks and first poll

    def stop_workers(self) -> None:
        for proc in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
        for proc in self.workers:
            proc.wait(timeout=60)
        self.workers = []

    def cpu(self) -> dict[str, float]:
        assert self.server is not None and self.gateway is not None
        return {
            "server": cpu_seconds(self.server.pid),
            "gateway": cpu_seconds(self.gateway.pid),
            "workers": sum(cpu_seconds(w.pid) for w in self.workers),
        }

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.gateway_url, headers={"X-API-Key": self.key}, timeout=60)


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code < 500:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def terraform_waits(root: Path) -> tuple[int, float, float]:
    """Seconds from each plan's or apply's start (Terraform's version line) to its next
    event: the state lock taken and the refresh done; how many, p50, p90 (the last plan
    and apply of each workspace)."""
    import json
    from datetime import datetime

    waits = []
    for log in [
        *root.glob("worker-*/deployments/*/plan.log"),
        *root.glob("worker-*/deployments/*/apply.log"),
    ]:
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        stamps = [datetime.fromisoformat(e["@timestamp"].replace("Z", "+00:00")) for e in events[:2]]
        if len(stamps) == 2:
            first, second = stamps
            waits.append((second - first).total_seconds())
    return len(waits), pct(waits, 50), pct(waits, 90)


def burst(fleet: Fleet, size: int, tag: str) -> tuple[float, dict[str, float], int]:
    """``size`` provisions at once; wall time until all ended, CPU per run, how many completed."""
    gateway = fleet.client()
    before = fleet.cpu()
    started = time.perf_counter()
    body = {"cloud_provider": "local", "provider_config": {}, "count": 1}
    ids = [
        gateway.post("/provision", json={**body, "instance_name_prefix": f"{tag}-{i}"}).json()["request_id"]
        for i in range(size)
    ]
    pending = set(ids)
    completed = 0
    while pending:
        time.sleep(1)
        for run_id in list(pending):
            status = gateway.get(f"/api/runs/{run_id}").json()["status"]
            if status in TERMINAL:
                pending.discard(run_id)
                completed += status == "completed"
    wall = time.perf_counter() - started
    after = fleet.cpu()
    return wall, {k: (after[k] - before[k]) / size for k in after}, completed


def sweep(fleet: Fleet, targets: list[dict[str, Any]], shard_size: int) -> tuple[float, str]:
    """The reconcile deployment run on ``targets`` in shards; wall time and its end."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: fleet.env["PREFECT_API_URL"]}):
        started = time.perf_counter()
        run = run_deployment(
            "reconcile/reconcile",
            parameters={"clients": targets, "shard_size": shard_size},
            timeout=0,
            as_subflow=False,
        )
        with get_client(sync_client=True) as client:
            while True:
                state = client.read_flow_run(run.id).state  # type: ignore[union-attr]
                if state is not None and state.is_final():
                    return time.perf_counter() - started, state.name or ""
                time.sleep(1)


def registry_figures(fleet: Fleet, requests: int) -> list[tuple[str, ...]]:
    parent = seed(f"{_driver('psycopg')}/{fleet.db}")
    gateway = fleet.client()

    def measure(method: str, path: str, **kw: Any) -> tuple[str, str]:
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = gateway.request(method, path, **kw)
            assert response.status_code < 300, (path, response.status_code, response.text[:200])
            times.append((time.perf_counter() - started) * 1000)
        return f"{pct(times, 50):.1f}", f"{pct(times, 99):.1f}"

    rows: list[tuple[str, ...]] = [("GET /health (trivial)", *measure("GET", "/health"))]
    for name, params in (
        ("no filter", {}),
        ("status=ready", {"status": "ready"}),
        ("drift=drifted", {"drift": "drifted"}),
        ("target=local", {"target": "local"}),
        ("parent=<uuid>", {"parent": parent}),
        ("offset=9000", {"offset": "9000"}),
    ):
        rows.append((f"GET /api/clients {name}", *measure("GET", "/api/clients", params=params)))
    rows.append(("GET /metrics", *measure("GET", "/metrics")))
    body = {"cloud_provider": "local", "provider_config": {}, "count": 1, "instance_name_prefix": "p99"}
    rows.append(("POST /provision", *measure("POST", "/provision", json=body)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=18, help="clients in the sweep")
    parser.add_argument("--burst", type=int, default=20, help="provisions in each burst")
    parser.add_argument("--registry", type=int, default=10_000, help="clients for the registry figures")
    parser.add_argument("--requests", type=int, default=200, help="requests per registry figure")
    parser.add_argument("--latency", type=float, default=0.2, help="localcloud seconds per resource call")
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--worker-limit", type=int, default=2, help="flow runs per worker")
    parser.add_argument("--fleet-concurrency", type=int, default=6, help="FLEET_CONCURRENCY")
    parser.add_argument("--skip-registry", action="store_true", help="no registry figures")
    parser.add_argument("--window", type=int, default=200, help="PREFECT_SERVER_API_DEFAULT_LIMIT")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the fleet is stopped and dropped
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ["BENCH_LIST_CLIENTS"] = str(args.registry)
    import bench.list_clients

    bench.list_clients.N_CLIENTS = args.registry
    counts = [int(w) for w in args.workers.split(",")]
    shard_size = max(1, math.ceil(args.clients / 6))
    burst_rows: list[tuple[str, ...]] = []
    sweep_rows: list[tuple[str, ...]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Fleet(Path(tmp), args) as fleet:
        base_burst = base_sweep = 0.0
        for workers in counts:
            fleet.scale_to(workers)
            wall, cpu, completed = burst(fleet, args.burst, f"b{workers}")
            base_burst = base_burst or wall
            burst_rows.append(
                (
                    str(workers),
                    f"{completed}/{args.burst}",
                    f"{wall:.1f}",
                    f"{args.burst / wall * 60:.0f}",
                    f"{base_burst / wall:.2f}x",
                    f"{cpu['server']:.2f}",
                    f"{cpu['gateway']:.2f}",
                    f"{cpu['workers']:.2f}",
                )
            )
            print(burst_rows[-1], flush=True)
            fleet_page = fleet.client().get("/api/reconcile/fleet", params={"limit": args.clients}).json()
            targets = fleet_page["clients"][: args.clients]
            wall, end = sweep(fleet, targets, shard_size)
            base_sweep = base_sweep or wall
            sweep_rows.append(
                (
                    str(workers),
                    str(len(targets)),
                    str(math.ceil(len(targets) / shard_size)),
                    f"{wall:.1f}",
                    f"{len(targets) / wall * 60:.0f}",
                    f"{base_sweep / wall:.2f}x",
                    end,
                )
            )
            print(sweep_rows[-1], flush=True)
        fleet.stop_workers()
        waits = terraform_waits(fleet.root)
        registry_rows = [] if args.skip_registry else registry_figures(fleet, args.requests)
    print()
    print(
        table(
            f"Burst of {args.burst} provisions (latency {args.latency}s per resource call, worker limit "
            f"{args.worker_limit}, FLEET_CONCURRENCY {args.fleet_concurrency}, poll window {args.window})",
            burst_rows,
            (
                "workers",
                "completed",
                "drain s",
                "runs/min",
                "speed-up",
                "CPU s/run server",
                "gateway",
                "workers",
            ),
        )
    )
    print()
    print(
        table(
            f"Sweep in shards of {shard_size} (latency {args.latency}s per resource read)",
            sweep_rows,
            ("workers", "clients", "shards", "wall s", "clients/min", "speed-up", "end"),
        )
    )
    if registry_rows:
        print()
        print(
            table(
                f"{args.registry} clients in the registry (PostgreSQL), {args.requests} requests each (ms)",
                registry_rows,
                ("request", "p50", "p99"),
            )
        )
    print(f"\nTerraform start to first plan/apply event (state lock + refresh), {waits[0]} commands:")
    print(f"p50 {waits[1]:.1f} s, p90 {waits[2]:.1f} s")
    print(f"\nall in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
