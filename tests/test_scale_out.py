"""The scale-out recipe of docs/how-to/scale-out.md ("Outgrowing one machine"), run as
written (its bash block, on loopback): a Prefect server on PostgreSQL, `tenantform deploy`,
two `tenantform worker`s with their own data dirs, the gateway alone on a PostgreSQL
registry, state and localcloud in PostgreSQL. Both workers take work; one stops on a single
SIGTERM; the other destroys everything, whoever built it, and nothing is left behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.processes import alive, descendants
from flows.workflows import PROJECT_ROOT
from tests.support import free_port, wait_until

PG = "postgresql://postgres@127.0.0.1:5432"
TERMINAL = ("completed", "failed", "cancelled")


def recipe() -> str:
    text = (PROJECT_ROOT / "docs" / "how-to" / "scale-out.md").read_text()
    block = re.search(r"<!-- recipe:start -->\n```bash\n(.*?)```\n<!-- recipe:end -->", text, re.S)
    assert block, "docs/how-to/scale-out.md has no recipe block"
    return block.group(1)


def _drop(db: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        for name in (db, f"{db}_prefect"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _worker_pids(root: Path, name: str) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/environ"):
        try:
            cmdline = (stat.parent / "cmdline").read_bytes()
            environ = stat.read_bytes()
        except OSError:
            continue
        ours = b"tenantform" in cmdline and b"worker" in cmdline and str(root / name).encode() in environ
        if ours and b"prefect" not in cmdline:  # `tenantform worker` (and uv), not Prefect's child
            found.append(int(stat.parent.name))
    return found


def _wait_run(gateway: httpx.Client, run_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = gateway.get(f"/api/runs/{run_id}").json()
        if run["status"] in TERMINAL:
            return run
        time.sleep(1)
    raise TimeoutError(f"run {run_id} did not end")


def test_the_readme_recipe_runs_as_written(tmp_path: Path) -> None:
    import psycopg

    db = f"tf_scale_{uuid.uuid4().hex[:8]}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "TENANTFORM_", "API_", "DATABASE_"))
    }
    env.update(
        DB=db,
        PREFECT_PORT=str(free_port()),
        GATEWAY_PORT=str(free_port()),
        API_KEY="scale-out-key-0123",
        DATA_ROOT=str(tmp_path),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        UV_FROZEN="1",  # the recipe's `uv run` never syncs or relocks the shared checkout
    )
    script = tmp_path / "recipe.sh"
    script.write_text("set -e\n" + recipe())
    log = tmp_path / "recipe.log"
    proc = subprocess.Popen(
        ["bash", str(script)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    gateway = httpx.Client(
        base_url=f"http://127.0.0.1:{env['GATEWAY_PORT']}", headers={"X-API-Key": env["API_KEY"]}, timeout=15
    )
    try:

        def gateway_up() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return gateway.get("/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(gateway_up, 240, "the recipe's gateway")
        prefect_api = f"http://127.0.0.1:{env['PREFECT_PORT']}/api"
        refused = httpx.post(f"{prefect_api}/work_pools/filter", json={}, timeout=15)
        assert refused.status_code == 401, "the recipe's Prefect server answers without its auth string"
        body = {"cloud_provider": "local", "provider_config": {}, "count": 1}
        runs = [
            gateway.post("/provision", json={**body, "instance_name_prefix": f"scale-{i}"}).json()[
                "request_id"
            ]
            for i in range(4)
        ]
        hospital = str(uuid.uuid4())
        registered = gateway.post(
            "/api/hospitals/register",
            json={
                "client_name": "Scale General",
                "client_uuid": hospital,
                "environment": "dev",
                "region": "me-central2",
            },
        )
        assert registered.status_code == 202, registered.text
        runs.append(registered.json()["request_id"])
        ended = [_wait_run(gateway, r) for r in runs]
        assert [r["status"] for r in ended] == ["completed"] * 5, [r["message"] for r in ended]

        took = {
            name: len(list((tmp_path / name / "deployments").glob("*")))
            for name in (".tenantform-w1", ".tenantform-w2")
        }
        assert all(took.values()), f"both workers take work: {took}"

        first = _worker_pids(tmp_path, ".tenantform-w1")
        assert first, "no `tenantform worker` process for the first data dir"
        family = [p for pid in first for p in [pid, *descendants(pid)]]
        for pid in first:
            os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not any(alive(p) for p in family), 60, "the first worker to stop on one SIGTERM")

        clients = [r["client_uuid"] for r in ended]
        destroys = [gateway.delete(f"/api/clients/{c}").json()["request_id"] for c in clients]
        gone = [_wait_run(gateway, r) for r in destroys]
        assert [g["status"] for g in gone] == ["completed"] * 5, [g["message"] for g in gone]
        assert all(g["message"] == "Destroy completed successfully" for g in gone), [
            g["message"] for g in gone
        ]
        with psycopg.connect(f"{PG}/{db}") as conn:
            left = conn.execute("SELECT kind, id FROM localcloud.objects").fetchall()
        assert left == [], f"objects left behind: {left}"
    finally:
        with_children = [proc.pid, *descendants(proc.pid)]
        for pid in with_children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while any(alive(p) for p in with_children) and time.monotonic() < deadline:
            time.sleep(0.3)
        for pid in with_children:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        _drop(db)


pytestmark = pytest.mark.timeout(900)
