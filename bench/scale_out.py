"""30 `local` provisions through one gateway with 1, 2 and 3 process workers (limit 1
each, `tenantform worker`, separate data dirs), in one run: wall time and the ratio to
one worker. On a 2-core machine Terraform is CPU-bound, so more workers here mostly show
what the dispatch path costs; on more machines they add cores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import stack, table

N = int(os.environ.get("BENCH_SCALE_PROVISIONS", "30"))


def provision_all(gateway: httpx.Client, tag: str) -> float:
    body = {"cloud_provider": "local", "provider_config": {}, "count": 1}
    started = time.perf_counter()
    runs = [
        gateway.post("/provision", json={**body, "instance_name_prefix": f"{tag}-{i}"}).json()
        for i in range(N)
    ]
    for accepted in runs:
        while (status := gateway.get(f"/status/{accepted['request_id']}").json())["status"] == "in_progress":
            time.sleep(0.5)
        assert status["status"] == "completed", status
    return time.perf_counter() - started


def main() -> None:
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp) / "stack", worker_limit=1) as running:
        cfg = running.config
        gateway = httpx.Client(base_url=cfg.gateway_url, headers={"X-API-Key": cfg.api_key or ""}, timeout=30)
        extra: list[subprocess.Popen[bytes]] = []
        env = {**os.environ, "PREFECT_API_URL": running.prefect_api_url}
        try:
            baseline = 0.0
            for workers in (1, 2, 3):
                while len(extra) < workers - 1:
                    data = Path(tmp) / f"worker-{len(extra) + 2}"
                    extra.append(
                        subprocess.Popen(
                            [str(Path(sys.executable).parent / "tenantform"), "worker", "--limit", "1"],
                            env={**env, "TENANTFORM_DATA_DIR": str(data)},
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                    time.sleep(8)  # the worker's checks and first poll
                wall = provision_all(gateway, f"w{workers}")
                baseline = baseline or wall
                rows.append((str(workers), f"{wall:.1f}", f"{N / wall * 60:.0f}", f"{wall / baseline:.2f}x"))
        finally:
            for proc in extra:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    header = ("workers", "wall s", "provisions/min", "vs 1 worker")
    print(table(f"{N} local provisions, workers with limit 1 each", rows, header))


if __name__ == "__main__":
    main()
