"""GET /api/clients at 10,000 clients, with each filter, over real HTTP against the
gateway (uvicorn), p50/p99, next to a trivial route's on the same server in the same run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.common import free_port, pct, table

N_CLIENTS = int(os.environ.get("BENCH_LIST_CLIENTS", "10000"))
REQUESTS = int(os.environ.get("BENCH_LIST_REQUESTS", "300"))


def seed(url: str) -> str:
    """10,000 clients straight into the registry; returns a parent with sub-clients."""
    from api.registry.db import Registry
    from api.registry.models import Client

    registry = Registry(url)
    registry.migrate()
    parent = str(uuid.uuid4())
    start = datetime.now(UTC) - timedelta(days=1)
    with registry.session() as session:
        session.add(
            Client(
                id=parent,
                kind="hospital",
                target="local-hospital",
                inputs={},
                fingerprint="x",
                status="ready",
                status_message="",
                created_at=start,
            )
        )
        for i in range(N_CLIENTS):
            session.add(
                Client(
                    id=str(uuid.uuid4()),
                    kind="sub-hospital" if i % 100 == 0 else "instances",
                    target="local-sub-hospital" if i % 100 == 0 else "local",
                    parent_id=parent if i % 100 == 0 else None,
                    inputs={"cloud_provider": "local", "count": 1, "instance_name_prefix": f"c{i}"},
                    fingerprint="x",
                    status=("ready", "failed", "destroyed")[i % 3],
                    status_message="",
                    drift_status=("in_sync", "drifted", "unknown")[i % 3],
                    created_at=start + timedelta(seconds=i),
                )
            )
    registry.dispose()
    return parent


def measure(client: httpx.Client, path: str, params: dict[str, str]) -> tuple[float, float]:
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        assert client.get(path, params=params).status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    return pct(times, 50), pct(times, 99)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'registry.db'}"
        parent = seed(db)
        port, key = free_port(), "bench-key"
        env = {
            **os.environ,
            "DATABASE_URL": db,
            "API_KEY": key,
            "TENANTFORM_DATA_DIR": tmp,
            "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
            "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
            "RATE_LIMIT_PER_SECOND": "0",  # measuring the path, not the limiter
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port), "--log-level", "warning"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=10)
            while True:
                try:
                    client.get("/")
                    break
                except httpx.HTTPError:
                    time.sleep(0.3)
            rows = []
            base50, base99 = measure(client, "/", {})
            rows.append(("GET / (trivial, baseline)", f"{base50:.1f}", f"{base99:.1f}"))
            for name, params in (
                ("no filter", {}),
                ("status=ready", {"status": "ready"}),
                ("drift=drifted", {"drift": "drifted"}),
                ("target=local", {"target": "local"}),
                ("parent=<uuid>", {"parent": parent}),
                ("offset=9000", {"offset": "9000"}),
            ):
                p50, p99 = measure(client, "/api/clients", params)
                rows.append((f"GET /api/clients {name}", f"{p50:.1f}", f"{p99:.1f}"))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(
        table(
            f"GET /api/clients, {N_CLIENTS} clients, {REQUESTS} requests each (ms)",
            rows,
            ("request", "p50", "p99"),
        )
    )


if __name__ == "__main__":
    main()
