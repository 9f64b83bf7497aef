"""``tenantform worker``: a Prefect process worker with the project's settings, on this or
any other machine. It checks what a run needs (Terraform, the state backend, the Prefect
API, a data dir) before it takes work, and stops on one SIGTERM or SIGINT (Prefect's own
worker ignores the first SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from deployments.processes import stop_all, stop_with_wrapper
from deployments.stack import STOP_GRACE, TUNED_PREFECT_ENV, start_worker
from flows.settings import Settings, get_settings
from flows.workflows import work_pool_name


class NotReady(RuntimeError):
    """What is missing, and which setting fixes it."""


@dataclass
class WorkerConfig:
    limit: int = 2
    pool: str | None = None
    log: Path | None = None
    warm: bool = True
    """Start the warm process (deployments/warm/) beside the worker."""


def check_prefect(api_url: str | None) -> str:
    if not api_url:
        raise NotReady("PREFECT_API_URL is not set: point it at the Prefect server (http://host:4200/api)")
    try:
        httpx.get(f"{api_url.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        raise NotReady(f"the Prefect API at {api_url} does not answer: {exc}") from None
    return api_url


def check_terraform(settings: Settings) -> str:
    from flows.terraform.binary import find_binary

    binary = find_binary(settings.terraform_bin)
    done = subprocess.run(
        [str(binary.path), "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise NotReady(f"{binary.path} does not run: {done.stderr.strip()[:200]} (set TERRAFORM_BIN)")
    return done.stdout.splitlines()[0]


def check_state_backend(settings: Settings) -> str:
    if settings.state_backend == "local":
        return f"local files under {settings.root / 'state'}"
    if settings.state_pg_conn_str is None:
        raise NotReady("STATE_BACKEND=pg needs STATE_PG_CONN_STR (postgres://user@host:5432/db?sslmode=...)")
    import psycopg

    try:
        with psycopg.connect(settings.state_pg_conn_str.get_secret_value(), connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise NotReady(f"STATE_PG_CONN_STR does not connect: {type(exc).__name__}") from None
    return "PostgreSQL (STATE_PG_CONN_STR)"


def check_data_dir(settings: Settings) -> Path:
    root = settings.root
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise NotReady(f"data dir {root} is not writable ({exc}); set TENANTFORM_DATA_DIR") from None
    return root


def run_worker(config: WorkerConfig) -> int:
    settings = get_settings()
    env = {**TUNED_PREFECT_ENV, **os.environ}
    try:
        api_url = check_prefect(env.get("PREFECT_API_URL"))
        root = check_data_dir(settings)
        checks = {
            "Prefect API": api_url,
            "data dir": str(root),
            "Terraform": check_terraform(settings),
            "state backend": check_state_backend(settings),
        }
    except NotReady as exc:
        print(f"tenantform worker: not ready: {exc}", file=sys.stderr)
        return 2
    for name, value in checks.items():
        print(f"  {name:<14} {value}", flush=True)
    env["TENANTFORM_DATA_DIR"] = str(root)
    pool = config.pool or work_pool_name()
    children = start_worker(
        env, pool=pool, limit=config.limit, logs=root / "logs", worker_log=config.log, warm=config.warm
    )
    child = children[-1]
    print(f"worker polling pool {pool!r} (limit {config.limit}); log: {child.log_path}", flush=True)
    stop = {"signal": 0}

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    stop_with_wrapper()
    while not stop["signal"] and child.running:
        time.sleep(0.3)
    code = 0 if stop["signal"] else (child.proc.returncode or 1)
    stop_all(children, budget=STOP_GRACE + 2)
    print("worker stopped.", flush=True)
    return code
