"""Warm start against the stock start, in one stack and one run: the catalogue's
deployments alternate between two commands (``python -m deployments.warm.launch``, the
warm start, and ``python -m prefect.engine``) and nothing else, request by request.

Per arm: accept -> flow run RUNNING and accept -> ``terraform-init`` started (p50/p95),
the CPU seconds the run's own processes spent before Terraform's ``init`` started (the
engine, and for the warm arm its launcher and supervisor), the CPU of the whole run with
Terraform (children's times of the worker and the warm process), and the run process's
PSS. Then: the first run after the warm process restarts (SIGHUP, a request at once), 4
requests at once per arm, and the warm arm with the warm process stopped (the fallback).

``python -m bench.warm_start [-n N]`` (default: WARM_BENCH_N or 30, after 2 warm-ups). It
runs twice: with Prefect on SQLite (the embedded default), then on PostgreSQL
(``BENCH_POSTGRES_URL``, default the local server; skipped when it does not answer). On
SQLite, Prefect answers some writes with 503 "database is locked" and its client waits
2 s before trying again; the PostgreSQL run shows the path without those waits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench.common import pct, stack, table
from deployments.stack import Stack

ARMS = {"warm": "python -m deployments.warm.launch", "stock": "python -m prefect.engine"}
TICK = os.sysconf("SC_CLK_TCK")


async def set_command(command: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    from flows.workflows import workflows

    async with get_client() as client:
        for entry in workflows().values():
            deployment = await client.read_deployment_by_name(entry.deployment_name)
            await client.update_deployment(
                deployment.id, DeploymentUpdate(job_variables={**entry.job_variables, "command": command})
            )


async def flow_run_start(flow_run_id: str) -> float:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(UUID(flow_run_id))
    assert run.start_time is not None
    return run.start_time.timestamp()


# /proc ----------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    except OSError:
        pass
    return found


def stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def own_cpu(pid: int) -> float:
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def reaped_cpu(pid: int) -> float:
    """CPU of the children ``pid`` has waited for (and theirs)."""
    fields = stat_fields(pid)
    return (int(fields[13]) + int(fields[14])) / TICK


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _is_run(pid: int) -> bool:
    """A run's process (a zombie too: its CPU counts once it is reaped)."""
    try:
        if stat_fields(pid)[0] == "Z":
            return True
    except OSError:
        return False
    return "prefect.engine" in cmdline(pid) or "warm.launch" in cmdline(pid)


def memory_kb(pid: int, key: str, source: str = "status") -> int:
    for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Sampler:
    """Watches one run's processes until its ``terraform init`` starts."""

    worker: int
    warm: int | None
    cpu: dict[int, float] = field(default_factory=dict)
    pre_terraform_cpu: float | None = None
    pss_mb: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _run_processes(self) -> tuple[list[int], list[int]]:
        """(every process of the run but Terraform, the engines among them)"""
        top = children(self.worker)
        engines = [p for p in top if "prefect.engine" in cmdline(p)]
        if self.warm is not None:
            supervisors = children(self.warm)
            top += supervisors
            engines += [c for s in supervisors for c in children(s)]
        return list({*top, *engines}), engines

    def _loop(self) -> None:
        while not self._stop.is_set() and self.pre_terraform_cpu is None:
            processes, engines = self._run_processes()
            for pid in processes:
                try:
                    self.cpu[pid] = own_cpu(pid)
                except OSError:
                    continue
            for engine in engines:
                if any(" init" in cmdline(c) and "terraform" in cmdline(c) for c in children(engine)):
                    self.pre_terraform_cpu = sum(self.cpu.values())
                    with contextlib.suppress(OSError):
                        self.pss_mb = memory_kb(engine, "Pss", "smaps_rollup") / 1024
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


@dataclass
class Bench:
    running: Stack
    gateway: httpx.Client
    worker: int
    warm_log: Path
    seq: int = 0

    @property
    def warm(self) -> int | None:
        found = [c for c in self.running.children if c.name == "warm" and c.running]
        return found[0].proc.pid if found else None

    def reaped(self) -> float:
        return sum(reaped_cpu(p) for p in (self.worker, self.warm) if p is not None)

    def submit(self) -> tuple[str, float]:
        self.seq += 1
        body = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": f"w{self.seq}"}
        accepted_at = time.time()
        return self.gateway.post("/provision", json={**body, "count": 1}).json()["request_id"], accepted_at

    def finish(self, request_id: str, accepted_at: float) -> dict[str, float]:
        while self.gateway.get(f"/status/{request_id}").json()["status"] == "in_progress":
            time.sleep(0.2)
        run = self.gateway.get(f"/api/runs/{request_id}").json()
        assert run["status"] == "completed", run
        init = next(t for t in run["tasks"] if t["name"].startswith("terraform-init"))
        return {
            "to_running": asyncio.run(flow_run_start(run["flow_run_id"])) - accepted_at,
            "to_init": datetime.fromisoformat(init["start_time"]).timestamp() - accepted_at,
        }

    def one(self) -> dict[str, float]:
        sampler = Sampler(self.worker, self.warm)
        before = self.reaped()
        request_id, accepted_at = self.submit()
        result = self.finish(request_id, accepted_at)
        sampler.stop()
        self.wait_quiet()
        result["cpu_total"] = self.reaped() - before
        if sampler.pre_terraform_cpu is not None:
            result["cpu_pre_terraform"] = sampler.pre_terraform_cpu
        if sampler.pss_mb is not None:
            result["pss_mb"] = sampler.pss_mb
        return result

    def wait_quiet(self, timeout: float = 120) -> None:
        """Until the run's processes are gone and reaped: a run ends in Prefect before its
        process exits, and its CPU must not count for the next run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [p for p in children(self.worker) if _is_run(p)]
            if not runs and (self.warm is None or not children(self.warm)):
                return
            time.sleep(0.1)

    def concurrent(self, k: int = 4) -> list[dict[str, float]]:
        submitted = [self.submit() for _ in range(k)]
        results = [self.finish(request_id, accepted_at) for request_id, accepted_at in submitted]
        self.wait_quiet()
        return results

    def wait_warm_ready(self, after: int = 0, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while "warm: ready" not in self.warm_log.read_text()[after:]:
            if time.monotonic() > deadline:
                raise TimeoutError("the warm process did not get ready")
            time.sleep(0.2)


def postgres_server() -> str:
    return os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def prefect_database(kind: str) -> Iterator[None]:
    """Prefect's database for one measurement: the stack's SQLite, or a fresh PostgreSQL
    database dropped afterwards."""
    if kind == "sqlite":
        yield
        return
    import psycopg

    server = postgres_server()
    name = f"bench_prefect_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(drivername="postgresql+asyncpg", database=name)
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = url.render_as_string(hide_password=False)
    try:
        yield
    finally:
        del os.environ["PREFECT_API_DATABASE_CONNECTION_URL"]
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_answers() -> bool:
    import psycopg

    try:
        with psycopg.connect(postgres_server(), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def measure(n: int) -> dict[str, Any]:
    os.environ.setdefault("FLEET_CONCURRENCY", "4")  # 4 at once must not wait for Terraform slots
    results: dict[str, Any] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp)) as running:
        cfg = running.config
        worker = next(c for c in running.children if c.name == "worker").proc.pid
        gateway = httpx.Client(base_url=cfg.gateway_url, headers={"X-API-Key": cfg.api_key or ""}, timeout=30)
        bench = Bench(running, gateway, worker, Path(tmp) / "logs" / "warm.log")
        bench.wait_warm_ready()
        for i in range(n + 2):
            for arm, command in ARMS.items():
                asyncio.run(set_command(command))
                result = bench.one()
                if i >= 2:  # two warm-ups
                    results[arm].append(result)
        for arm, command in ARMS.items():
            asyncio.run(set_command(command))
            results[f"{arm}_concurrent"] = bench.concurrent()
        asyncio.run(set_command(ARMS["warm"]))
        warm_pid = bench.warm
        assert warm_pid is not None
        mark = bench.warm_log.stat().st_size
        results["rss_mb"] = {
            "worker": memory_kb(worker, "VmRSS") / 1024,
            "warm process": memory_kb(warm_pid, "VmRSS") / 1024,
            "warm process (PSS)": memory_kb(warm_pid, "Pss", "smaps_rollup") / 1024,
        }
        os.kill(warm_pid, signal.SIGHUP)
        results["after_restart"] = [bench.one()]
        bench.wait_warm_ready(after=mark)
        next(c for c in running.children if c.name == "warm").stop()
        results["fallback"] = [bench.one() for _ in range(max(3, n // 5))]
    return results


def row(label: str, runs: list[dict[str, float]]) -> tuple[str, ...]:
    def p(key: str, q: float) -> str:
        values = [r[key] for r in runs if key in r]
        return f"{pct(values, q):.2f}" if values else "-"

    def mean(key: str, fmt: str = "{:.2f}") -> str:
        values = [r[key] for r in runs if key in r]
        return fmt.format(statistics.fmean(values)) if values else "-"

    return (
        label,
        str(len(runs)),
        p("to_running", 50),
        p("to_running", 95),
        p("to_init", 50),
        p("to_init", 95),
        mean("cpu_pre_terraform"),
        mean("cpu_total"),
        mean("pss_mb", "{:.0f}"),
    )


def report(results: dict[str, Any], database: str) -> str:
    rows = [
        row("warm start (launcher -> warm process)", results["warm"]),
        row("stock (python -m prefect.engine)", results["stock"]),
        row("warm, first run after a restart", results["after_restart"]),
        row("warm, warm process stopped (fallback)", results["fallback"]),
        row("warm, 4 requests at once", results["warm_concurrent"]),
        row("stock, 4 requests at once", results["stock_concurrent"]),
    ]
    header = ("arm", "n", "RUNNING p50", "p95", "init p50", "p95", "CPU pre-TF s", "CPU/run s", "PSS MB")
    rss = ", ".join(f"{k} {v:.0f} MB" for k, v in results["rss_mb"].items())
    title = f"warm start, Prefect on {database}: accept -> RUNNING / terraform init (seconds)"
    return table(title, rows, header) + f"\nRSS: {rss}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=int(os.environ.get("WARM_BENCH_N", "30")))
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in databases and not postgres_answers():
        print("PostgreSQL does not answer (BENCH_POSTGRES_URL): its run is skipped", flush=True)
        databases.remove("postgresql")
    if len(databases) > 1:  # one process per stack: Prefect's client keeps its first API URL
        for database in databases:
            argv = [sys.executable, "-m", "bench.warm_start", "-n", str(args.n), "--database", database]
            subprocess.run(argv, check=True)
        return
    with prefect_database(databases[0]):
        results = measure(args.n)
    print(f"RESULT {databases[0]} " + json.dumps(results), flush=True)
    print(report(results, databases[0]), flush=True)


if __name__ == "__main__":
    main()
