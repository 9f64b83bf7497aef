"""One reconciliation sweep of N `local` clients (N=50) through a running stack, next to
the same N `init` + `plan` run by hand with the same binary and the same parallelism,
in the same run: wall time, clients per minute and CPU seconds (the whole machine's,
from /proc/stat, so the worker, its flow-run process and Terraform are all counted)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import stack, table

N = int(os.environ.get("BENCH_SWEEP_CLIENTS", "50"))


def cpu_seconds() -> float:
    """Busy CPU time of the whole machine (user + nice + system + irq + softirq)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def by_hand(data_dir: Path, client_ids: list[str], parallel: int) -> tuple[float, float]:
    from flows.settings import Settings
    from flows.terraform.binary import find_binary
    from flows.terraform.workspace import Workspace

    settings = Settings(data_dir=data_dir)
    binary = str(find_binary(None).path)

    def plan(client_id: str) -> None:
        ws = Workspace(settings.root, client_id)
        env = ws.environment()
        for args in (["init", "-input=false"], ["plan", "-input=false", "-detailed-exitcode"]):
            done = subprocess.run([binary, f"-chdir={ws.path}", *args], env=env, capture_output=True)
            assert done.returncode in (0, 2), done.stderr

    cpu, started = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(plan, client_ids))
    return time.perf_counter() - started, cpu_seconds() - cpu


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp) / "stack") as running:
        from flows.settings import get_settings

        parallel = get_settings().fleet_concurrency
        cfg = running.config
        gateway = httpx.Client(base_url=cfg.gateway_url, headers={"X-API-Key": cfg.api_key or ""}, timeout=30)
        body = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "sweep", "count": 1}
        runs = [gateway.post("/provision", json=body).json()["request_id"] for _ in range(N)]
        print(f"provisioning {N} clients ...", file=sys.stderr, flush=True)
        for run_id in runs:  # /status reads the registry only: cheap to poll
            while (run := gateway.get(f"/status/{run_id}").json())["status"] == "in_progress":
                time.sleep(1)
            assert run["status"] == "completed", run
        listed = gateway.get("/api/clients", params={"status": "ready", "limit": 1000}).json()["clients"]
        client_ids = [c["client_uuid"] for c in listed]
        assert len(client_ids) == N, len(client_ids)

        hand_wall, hand_cpu = by_hand(cfg.data_dir, client_ids, parallel)

        cpu, started = cpu_seconds(), time.perf_counter()
        accepted = gateway.post("/api/reconcile").json()
        assert accepted["clients"] == N, accepted
        while not all(gateway.get(f"/api/clients/{c}/drift").json()["history"] for c in client_ids):
            time.sleep(0.5)
        sweep_wall, sweep_cpu = time.perf_counter() - started, cpu_seconds() - cpu

    rows = [
        (
            "by hand (init + plan)",
            f"{hand_wall:.1f}",
            f"{N / hand_wall * 60:.0f}",
            f"{hand_cpu:.1f}",
            "1.00x",
        ),
        (
            "one sweep (gateway)",
            f"{sweep_wall:.1f}",
            f"{N / sweep_wall * 60:.0f}",
            f"{sweep_cpu:.1f}",
            f"{sweep_wall / hand_wall:.2f}x",
        ),
    ]
    header = ("arm", "wall s", "clients/min", "CPU s", "vs by hand")
    print(table(f"Reconciliation sweep of {N} clients, {parallel} at a time", rows, header))


if __name__ == "__main__":
    main()
