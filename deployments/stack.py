"""``tenantform up``: the whole system on one machine.

A Prefect server on SQLite (unless ``PREFECT_API_URL`` names one), the deployments from
``prefect.yaml``, a process worker polling every second, and the gateway. Everything
lives in the data dir, so a second ``up`` finds the clients and runs of the first.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from deployments.processes import (
    Child,
    PidFile,
    PortTaken,
    StackRunning,
    ensure_free,
    stop_all,
    stop_with_wrapper,
    with_project_python,
)
from deployments.warm.server import warm_env
from flows.logs import prefect_logging_env
from flows.settings import get_settings
from flows.workflows import work_pool_name

TUNED_PREFECT_ENV = {
    # Measured in bench/dispatch_latency.py: the worker's poll is most of the wait. Prefect
    # takes fractions (a float setting); each poll is one small API call per worker.
    "PREFECT_WORKER_QUERY_SECONDS": "0.5",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
    # Leases of concurrency slots survive a server restart (the default keeps them in
    # memory, so a restart left a dead run's slot taken for good).
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
}


STOP_GRACE = 5.0
"""Seconds a child has to stop after it is asked, before it and its descendants are killed."""
SERVER_STOP_GRACE = 3.0


@dataclass
class StackConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    prefect_port: int = 4200
    prefect_api_url: str | None = None
    api_key: str | None = None
    worker_limit: int = 4
    children: list[Child] = field(default_factory=list)

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def load_or_create_api_key(data_dir: Path) -> str:
    """The key kept in the data dir (0600) so a second ``up`` keeps the same one."""
    path = data_dir / "api-key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def _wait_http(url: str, timeout: float, what: str, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.running:
            raise RuntimeError(f"{what} exited early; see {child.log_path}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not answer at {url} within {timeout:.0f}s")


def start_worker(
    env: dict[str, str],
    *,
    pool: str,
    limit: int,
    logs: Path,
    worker_log: Path | None = None,
    warm: bool = True,
    started: Callable[[Child], object] = lambda _child: None,
) -> list[Child]:
    """Prefect's process worker polling ``pool`` and, with ``warm``, the warm process its
    flow runs start forked from (deployments/warm/: no interpreter and no Prefect import per
    run; its environment holds paths only, a run's arrives with the run). The worker stops
    on SIGINT (it ignores a first SIGTERM and keeps polling); the warm process's runs
    outlive its restart or crash. ``started`` is told of each child as it starts."""
    env = {**prefect_logging_env(get_settings().log_format), **env}
    children: list[Child] = []
    if warm:
        argv = [sys.executable, "-m", "deployments.warm.server"]
        children.append(Child("warm", argv, warm_env(env), logs / "warm.log", grace=STOP_GRACE, linger=True))
        started(children[-1])
    argv = [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool]
    argv += ["--type", "process", "--limit", str(limit)]
    log = worker_log or logs / "worker.log"
    worker = Child("worker", argv, with_project_python(env), log, first=signal.SIGINT, grace=STOP_GRACE)
    children.append(worker)
    started(children[-1])
    return children


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.children: list[Child] = []
        self.pid_file = PidFile(config.data_dir / "up.pid")
        self._stopping = False

    def _env(self) -> dict[str, str]:
        cfg = self.config
        env = {**os.environ, **{k: v for k, v in TUNED_PREFECT_ENV.items() if k not in os.environ}}
        env.update(
            TENANTFORM_DATA_DIR=str(cfg.data_dir),
            PREFECT_API_URL=self.prefect_api_url,
            PREFECT_HOME=str(cfg.data_dir / "prefect"),
            PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(cfg.data_dir / "results"),
            PREFECT_API_DATABASE_CONNECTION_URL=env.get(
                "PREFECT_API_DATABASE_CONNECTION_URL",
                f"sqlite+aiosqlite:///{cfg.data_dir / 'prefect' / 'prefect.db'}",
            ),
        )
        if cfg.prefect_api_url is None and "PREFECT_SERVER_CSRF_PROTECTION_ENABLED" not in env:
            # Our own server keeps Prefect's default (no CSRF protection), so a client's
            # token request only ever gets a 422: one wasted round trip per API client,
            # and a flow run opens several.
            env.setdefault("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")
        return with_project_python(env)

    @property
    def prefect_api_url(self) -> str:
        return self.config.prefect_api_url or f"http://127.0.0.1:{self.config.prefect_port}/api"

    def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pid_file.end_left_behind():
            print(f"ended {name} (pid {pid}), left running by an earlier tenantform up", flush=True)
        ensure_free(cfg.host, cfg.port, "the gateway")
        if cfg.prefect_api_url is None:
            ensure_free("127.0.0.1", cfg.prefect_port, "the Prefect server")
        (cfg.data_dir / "prefect").mkdir(exist_ok=True)
        cfg.api_key = cfg.api_key or load_or_create_api_key(cfg.data_dir)
        env = self._env()
        os.environ.update({k: env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME", "TENANTFORM_DATA_DIR")})
        os.environ["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "false"
        get_settings.cache_clear()  # read again: the data dir is this stack's now
        bin_dir = Path(sys.executable).parent
        logs = cfg.data_dir / "logs"

        if cfg.prefect_api_url is None:
            server = self._spawn(
                "prefect-server",
                [
                    str(bin_dir / "prefect"),
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(cfg.prefect_port),
                ],
                env,
                logs,
            )
            sqlite = env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("sqlite")
            where = f"SQLite in {cfg.data_dir / 'prefect'}" if sqlite else "its database"
            print(f"starting Prefect server ({where}) ...", flush=True)
            _wait_http(f"{self.prefect_api_url}/health", 180, "the Prefect server", server)

        from deployments.apply import crash_orphaned_runs, set_up_prefect

        applied = asyncio.run(set_up_prefect())
        if cfg.prefect_api_url is None:
            # Our own server and no worker of ours yet: a run still marked running lost its
            # process when the stack last stopped (a power cut, a SIGKILL).
            for name in asyncio.run(crash_orphaned_runs(work_pool_name())):
                print(f"crashed {name}: its process died when the stack last stopped", flush=True)
        print(f"set up on Prefect: {', '.join(applied)}", flush=True)

        worker_env = {
            **env,
            # A scheduled reconciliation sweep asks this gateway for the fleet.
            "TENANTFORM_GATEWAY_URL": cfg.gateway_url.replace("0.0.0.0", "127.0.0.1"),
            "API_KEY": cfg.api_key,
        }
        pool = work_pool_name()
        start_worker(worker_env, pool=pool, limit=cfg.worker_limit, logs=logs, started=self._track)
        gateway = self._spawn(
            "gateway",
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", cfg.host, "--port", str(cfg.port)],
            {**env, "API_KEY": cfg.api_key},
            logs,
        )
        _wait_http(f"{cfg.gateway_url}/health", 60, "the gateway", gateway)
        self.pid_file.write(self.children)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> Child:
        return self._track(Child(name, argv, env, logs / f"{name}.log", grace=STOP_GRACE))

    def _track(self, child: Child) -> Child:
        self.children.append(child)
        self.pid_file.write(self.children)
        return child

    def banner(self) -> str:
        cfg = self.config
        ui = self.prefect_api_url.removesuffix("/api")
        return "\n".join(
            [
                "",
                "tenantform is up",
                f"  gateway      {cfg.gateway_url}",
                f"  API docs     {cfg.gateway_url}/docs",
                f"  Prefect UI   {ui}",
                f"  API key      {cfg.api_key}",
                f"  data dir     {cfg.data_dir}",
                f"  logs         {cfg.data_dir / 'logs'}",
                "",
                "try:",
                f"  curl -s -X POST {cfg.gateway_url}/provision -H 'X-API-Key: {cfg.api_key}' "
                "-H 'Content-Type: application/json' "
                """-d '{"cloud_provider": "local", "provider_config": {}, """
                """"instance_name_prefix": "demo", "count": 2}'""",
                "",
                "Ctrl-C stops everything.",
            ]
        )

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        # The gateway, worker and runs first, while the Prefect server can still hear how
        # their runs ended; then the server. Both phases fit in docker's 10 s grace.
        server = [c for c in self.children if c.name == "prefect-server"]
        stop_all([c for c in self.children if c not in server], budget=STOP_GRACE + 1)
        stop_all(server, budget=SERVER_STOP_GRACE)
        self.children.clear()
        self.pid_file.remove()

    def wait(self) -> int:
        """Block until a signal or until a child dies; returns the exit code."""
        stop = {"signal": 0}

        def _on_signal(signum: int, _frame: FrameType | None) -> None:
            stop["signal"] = signum

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        refresh = time.monotonic() + 5
        while not stop["signal"]:
            if time.monotonic() > refresh:  # flow runs come and go: keep their pids on file
                refresh = time.monotonic() + 5
                self.pid_file.write(self.children)
            # Without the warm process runs still start (the launcher falls back): not fatal.
            dead = [c for c in self.children if not c.running and c.name != "warm"]
            if dead:
                print(f"{dead[0].name} exited; see {dead[0].log_path}. Stopping.", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0


class Stopped(Exception):
    """A SIGTERM or SIGINT while the stack was starting."""


def _stop_starting(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def run_up(config: StackConfig) -> int:
    stack = Stack(config)
    signal.signal(signal.SIGTERM, _stop_starting)
    signal.signal(signal.SIGINT, _stop_starting)
    stop_with_wrapper()
    try:
        stack.start()
    except Stopped as exc:
        print(f"tenantform up: stopped by {exc} while starting", file=sys.stderr)
        stack.stop()
        return 0
    except (PortTaken, StackRunning) as exc:
        print(f"tenantform up: {exc}", file=sys.stderr)
        stack.stop()
        return 2
    except BaseException as exc:
        print(f"tenantform up: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print(stack.banner(), flush=True)
    try:
        return stack.wait()
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped.", flush=True)
