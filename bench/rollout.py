"""One rollout of N `local` clients (N=200) in three waves (1 canary, 10 %, the rest) with
`max_parallel` at the fleet cap, next to the same kind of upgrade run by hand (one
`POST /api/clients/{id}/upgrade` per client, the same parallelism), in the same run: wall
time and CPU seconds (the whole machine's, so the worker, its flow runs, Terraform and the
gateway are all counted).

Each arm adds one bucket per client: by hand to revision B (one bucket more than the
clients' A), the rollout to C (another one more), so both apply one create per client."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import stack, table
from bench.sweep import cpu_seconds
from flows.terraform.modules import MODULES

N = int(os.environ.get("BENCH_ROLLOUT_CLIENTS", "200"))


def bucket(name: str) -> str:
    bucket_name = "${substr(var.client_id, 0, 8)}-" + name
    return f'\nresource "localcloud_bucket" "{name}" {{\n  name = "{bucket_name}"\n}}\n'


def record(data_dir: Path) -> str:
    from flows.settings import Settings
    from flows.terraform.revisions import revision_store

    return revision_store(Settings(data_dir=data_dir)).record("local").id


def no_scheduled_sweeps(prefect_api_url: str) -> None:
    """The `*/15` sweep shares the fleet cap with upgrades: paused, so that neither arm waits
    on a sweep of the whole fleet that the other did not meet."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_api_url}), get_client(sync_client=True) as client:
        client.pause_deployment(client.read_deployment_by_name("reconcile/reconcile").id)


def wait_run(gateway: httpx.Client, run_id: str) -> None:
    """/status reads the registry only: cheap to poll (GET /api/runs/{id} asks Prefect too)."""
    while (run := gateway.get(f"/status/{run_id}").json())["status"] == "in_progress":
        time.sleep(1)
    assert run["status"] == "completed", run


def by_hand(
    gateway: httpx.Client, client_ids: list[str], revision: str, parallel: int
) -> tuple[float, float]:
    def upgrade(client_id: str) -> None:
        answer = gateway.post(f"/api/clients/{client_id}/upgrade", json={"revision": revision})
        assert answer.status_code == 202, answer.text
        wait_run(gateway, answer.json()["request_id"])

    cpu, started = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(upgrade, client_ids))
    return time.perf_counter() - started, cpu_seconds() - cpu


def rollout(gateway: httpx.Client, revision: str, parallel: int) -> tuple[float, float, dict[str, Any]]:
    spec = {
        "target": "local",
        "revision": revision,
        "waves": [
            {"name": "canary", "count": 1, "max_parallel": parallel},
            {"name": "ten percent", "percent": 10, "max_parallel": parallel},
            {"name": "rest", "max_parallel": parallel},
        ],
    }
    cpu, started = cpu_seconds(), time.perf_counter()
    answer = gateway.post("/api/rollouts", json=spec)
    assert answer.status_code == 202, answer.text
    rid = answer.json()["rollout_id"]
    while (view := gateway.get(f"/api/rollouts/{rid}").json())["status"] not in (
        "completed",
        "halted",
        "aborted",
    ):
        time.sleep(1)
    assert view["status"] == "completed", view["message"]
    return time.perf_counter() - started, cpu_seconds() - cpu, view


def phases(view: dict[str, Any]) -> list[tuple[str, ...]]:
    """Per wave, from the clients' timings: the wave before's last upgrade (or the rollout's
    start) to its first plan, its first plan to its last, its last plan to its last upgrade's
    end: where a rollout's time goes beside the upgrades themselves."""
    rows = []
    before = datetime.fromisoformat(view["created_at"])
    for wave in view["waves"]:
        planned = [datetime.fromisoformat(c["planned_at"]) for c in wave["clients"] if c["planned_at"]]
        ended = [datetime.fromisoformat(c["ended_at"]) for c in wave["clients"] if c["ended_at"]]
        if not planned or not ended:
            continue
        first_plan, last_plan, last_end = min(planned), max(planned), max(ended)
        rows.append(
            (
                wave["name"] or str(wave["index"]),
                str(len(wave["clients"])),
                f"{(first_plan - before).total_seconds():.1f}",
                f"{(last_plan - first_plan).total_seconds():.1f}",
                f"{(last_end - last_plan).total_seconds():.1f}",
            )
        )
        before = last_end
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # The stack's modules are a copy: the bench edits it, never the project's.
        modules = Path(tmp) / "modules"
        shutil.copytree(MODULES, modules)
        os.environ["MODULES_DIR"] = str(modules)
        view, rows = measure(Path(tmp), modules / "local" / "main.tf")
    header = ("arm", "wall s", "clients/min", "CPU s", "vs by hand")
    print(table(f"Module upgrade of {N} clients, at the fleet cap", rows, header))
    header = ("wave", "clients", "to first plan s", "first to last plan s", "last plan to last end s")
    print(table("Where the rollout's time went", phases(view), header))


def measure(tmp: Path, main_tf: Path) -> tuple[dict[str, Any], list[tuple[str, ...]]]:
    """The stack, N clients, the upgrade by hand, then the rollout: its view and the rows."""
    original = main_tf.read_text()
    with stack(tmp / "stack") as running:
        from flows.settings import get_settings

        parallel = get_settings().fleet_concurrency
        no_scheduled_sweeps(running.prefect_api_url)
        cfg = running.config
        gateway = httpx.Client(base_url=cfg.gateway_url, headers={"X-API-Key": cfg.api_key or ""}, timeout=60)
        body = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "roll", "count": 1}
        print(f"provisioning {N} clients, {parallel * 2} at a time ...", file=sys.stderr, flush=True)
        for first in range(0, N, parallel * 2):  # a burst of N makes Prefect's SQLite answer 503s
            batch = [
                gateway.post("/provision", json=body).json()["request_id"]
                for _ in range(first, min(N, first + parallel * 2))
            ]
            for run_id in batch:
                wait_run(gateway, run_id)
        listed = gateway.get("/api/clients", params={"status": "ready", "limit": 1000}).json()["clients"]
        client_ids = [c["client_uuid"] for c in listed]
        assert len(client_ids) == N, len(client_ids)
        main_tf.write_text(original + bucket("first"))
        revision_b = record(cfg.data_dir)
        print(f"by hand: {N} upgrades, {parallel} at a time ...", file=sys.stderr, flush=True)
        hand_wall, hand_cpu = by_hand(gateway, client_ids, revision_b, parallel)
        main_tf.write_text(original + bucket("first") + bucket("second"))
        revision_c = record(cfg.data_dir)
        print(f"one rollout of {N} clients ...", file=sys.stderr, flush=True)
        roll_wall, roll_cpu, view = rollout(gateway, revision_c, parallel)
        if dump := os.environ.get("BENCH_ROLLOUT_DUMP"):  # the view and each upgrade run, to read
            runs = {
                c["run_id"]: gateway.get(f"/api/runs/{c['run_id']}", params={"logs": "true"}).json()
                for w in view["waves"]
                for c in w["clients"]
                if c["run_id"]
            }
            Path(dump).write_text(json.dumps({"view": view, "runs": runs}, indent=1, default=str))
    waves = " / ".join(str(len(w["clients"])) for w in view["waves"])
    rows = [
        (
            "by hand (upgrade runs)",
            f"{hand_wall:.1f}",
            f"{N / hand_wall * 60:.0f}",
            f"{hand_cpu:.1f}",
            "1.00x",
        ),
        (
            f"one rollout ({waves})",
            f"{roll_wall:.1f}",
            f"{N / roll_wall * 60:.0f}",
            f"{roll_cpu:.1f}",
            f"{roll_wall / hand_wall:.2f}x",
        ),
    ]
    return view, rows


if __name__ == "__main__":
    main()
