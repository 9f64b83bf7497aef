"""Helpers shared by tests: free ports, waiting for sockets, starting real servers."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from deployments.processes import with_project_python
from deployments.stack import TUNED_PREFECT_ENV
from flows.contract import FlowParameters
from flows.workflows import work_pool_name


def flow_params(client_id: str, target: str, inputs: dict[str, Any]) -> FlowParameters:
    """What the gateway hands a flow, for tests that call flows in-process."""
    return FlowParameters(run_id=str(uuid.uuid4()), client_id=client_id, target=target, inputs=inputs)


_PORTS_PER_PROCESS = 2000
_next_port = itertools.count()


def free_port() -> int:
    """A port nothing listens on. Under pytest-xdist each test process draws in turn from a
    range of its own below the kernel's ephemeral range: a port one process leaves unbound for
    a while (a server started again on it) is never handed to the other."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    low = 20000 + int(worker[2:]) * _PORTS_PER_PROCESS
    for _ in range(_PORTS_PER_PROCESS):
        port = low + next(_next_port) % _PORTS_PER_PROCESS
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{low + _PORTS_PER_PROCESS - 1}")


TRANSIENT: tuple[type[BaseException], ...] = (httpx.HTTPError, ConnectionError)
"""What a check may raise while what it waits for is not there yet: a server that does not
answer yet, or answers an error it will stop answering (Prefect's 503 on a busy SQLite)."""


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.2,
    transient: tuple[type[BaseException], ...] = TRANSIENT,
) -> None:
    """Call ``check`` until it returns true. An error in ``transient`` counts as "not yet"
    (the last one is named if time runs out); any other error, an AssertionError included,
    is raised at once instead of waiting out the bound."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except transient as exc:
            last = exc
        time.sleep(interval)
    detail = f" (last error: {last!r})" if last is not None else ""
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}")


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


LEASE_STORAGE = TUNED_PREFECT_ENV["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"]


def start_prefect_server(home: Path, port: int, ui: bool = False) -> subprocess.Popen[bytes]:
    """Its UI is off unless a test looks at it (tests/test_browser.py)."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": str(ui).lower(),
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": TUNED_PREFECT_ENV[
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"
        ],
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("PREFECT_API_URL", None)
    if ui:  # else the pages ask the default port's API
        env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    log = open(home / "server.log", "ab")
    return subprocess.Popen(
        [
            str(Path(os.sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_worker(env: dict[str, str], log_path: Path, pool: str | None = None) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")
    env = with_project_python(env)
    return subprocess.Popen(
        [
            str(Path(os.sys.executable).parent / "prefect"),
            "worker",
            "start",
            "--pool",
            pool or work_pool_name(),
            "--type",
            "process",
            "--limit",
            "4",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Workers ignore the first SIGTERM: SIGINT, then the group is killed."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=15)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    stop_process(proc, timeout=5)


def start_gateway(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """The gateway as `uvicorn api.main:app`, the Airflow document's manual deployment."""
    return subprocess.Popen(
        [os.sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def gateway_env(tmp_path: Path, api_url: str, key: str) -> dict[str, str]:
    """A gateway and worker of their own: own data dir, registry and Prefect server."""
    return {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "TENANTFORM_DATA_DIR": str(tmp_path / "data"),
        "API_KEY": key,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "DISPATCH_INTERVAL_SECONDS": "0.5",
        "SYNC_INTERVAL_SECONDS": "0.5",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
