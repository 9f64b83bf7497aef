"""Session-wide real parts: one Prefect server (SQLite) on a free port, a data dir.

The environment is set before anything imports Prefect or reads settings, so every
flow, task and subprocess in the session talks to this server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, http_ok, start_prefect_server, stop_process, wait_until

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="tenantform-tests-"))
_PREFECT_PORT = free_port()
POLICY_DIR = _SESSION_DIR / "policies"
"""The operator's policy directory of every run in the session, the worker's included
(empty: the built-ins only); tests/test_policy.py writes into it while the stack runs."""
POLICY_DIR.mkdir()
MODULES_DIR = _SESSION_DIR / "modules"
"""The session's copy of the project's modules (links made plain files; the same revision
hashes): the tests that edit a module on disk edit this one, so a pytest-xdist process
beside them, with its own copy, never sees their edit."""
shutil.copytree(
    Path(__file__).resolve().parents[1] / "infrastructure" / "modules",
    MODULES_DIR,
    ignore=shutil.ignore_patterns(".terraform*", "__pycache__"),
)

os.environ.update(
    PREFECT_API_URL=f"http://127.0.0.1:{_PREFECT_PORT}/api",
    PREFECT_HOME=str(_SESSION_DIR / "prefect-client"),
    PREFECT_SERVER_EPHEMERAL_ENABLED="false",
    PREFECT_LOGGING_TO_API_BATCH_INTERVAL="0.3",
    PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(_SESSION_DIR / "results"),
    TENANTFORM_DATA_DIR=str(_SESSION_DIR / "data"),
    POLICY_DIR=str(POLICY_DIR),
    MODULES_DIR=str(MODULES_DIR),
    TASK_RETRIES="2",
    TASK_RETRY_DELAY_SECONDS="0.5",
)
# The work-pool templates need the pools group (prefect-docker, -kubernetes, -gcp). Prefect
# imports every installed collection when a server or worker starts (seconds each), so the
# group lives in an environment of its own: tests/test_work_pools.py runs tests/pools there.
collect_ignore = [] if os.environ.get("TENANTFORM_POOLS_ENV") else ["pools"]

for name in list(os.environ):
    if name.startswith(("LOCALCLOUD_", "AWS_", "OCI_", "GOOGLE_", "GCP_", "TF_")):
        del os.environ[name]


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    home = _SESSION_DIR / "prefect-server"
    home.mkdir(parents=True, exist_ok=True)
    proc = start_prefect_server(home, _PREFECT_PORT)
    url = os.environ["PREFECT_API_URL"]
    try:
        # Generous: on two cores shared with CI and other runs, a start can take minutes.
        wait_until(lambda: http_ok(f"{url}/health"), 300, "the Prefect server")
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Fresh engine settings on a per-test data dir."""
    from flows.settings import get_settings

    monkeypatch.setenv("TENANTFORM_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session's files go, unless TENANTFORM_TESTS_KEEP is set (to read the worker's
    and warm process's logs after a failure)."""
    if os.environ.get("TENANTFORM_TESTS_KEEP"):
        print(f"\nsession files kept in {_SESSION_DIR}")
        return
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


WORKER_LOG = _SESSION_DIR / "worker.log"
WORKER_ENV = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    # Instances named slow-* take long to create: the crash tests kill runs mid-apply.
    "LOCALCLOUD_CREATE_DELAY_SECONDS": "120",
    "LOCALCLOUD_DELAY_NAME_PREFIX": "slow",
}


WARM_LOG = _SESSION_DIR / "warm.log"


@pytest.fixture(scope="session")
def warm_engine(prefect_server: str) -> Iterator[subprocess.Popen[bytes]]:
    """The warm process the session worker's runs are forked from, as `tenantform up`
    starts it (deployments/warm/): a run does not start a new interpreter that imports
    Prefect again, which on two cores was most of a short test's time."""
    import sys

    from deployments.warm.server import warm_env

    with open(WARM_LOG, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deployments.warm.server"],
            env=warm_env(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: "warm: ready" in WARM_LOG.read_text(), 120, "the warm process")
        yield proc
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def worker(prefect_server: str, warm_engine: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """The deployments applied from prefect.yaml and one process worker serving them."""
    import asyncio

    from deployments.apply import apply_deployments
    from flows.logs import prefect_logging_env
    from tests.support import start_worker, stop_worker

    asyncio.run(apply_deployments())
    env = {**os.environ, **WORKER_ENV, **prefect_logging_env("json")}  # as `tenantform up` does
    proc = start_worker(env, WORKER_LOG)
    yield proc
    stop_worker(proc)


API_KEY = "test-key-0123456789"
BASIC = ("airflow", "airflow-password")


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: str) -> Iterator[object]:
    """The gateway in-process (its dispatcher included) on a fresh registry."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import get_gateway_settings

    monkeypatch.setenv("API_KEY", API_KEY)
    monkeypatch.setenv("API_USERNAME", BASIC[0])
    monkeypatch.setenv("API_PASSWORD", BASIC[1])
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("SYNC_INTERVAL_SECONDS", "0.5")
    get_gateway_settings.cache_clear()
    with TestClient(create_app(), headers={"X-API-Key": API_KEY}) as client:
        yield client
    get_gateway_settings.cache_clear()
