"""``tenantform up`` as a user runs it: a subprocess on free ports, one request over real
HTTP, SIGTERM, nothing left behind; then a second ``up`` on the same data dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from deployments.processes import alive, descendants
from tests.support import free_port, wait_until

TENANTFORM = str(Path(sys.executable).parent / "tenantform")
REQUEST = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "demo", "count": 2}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "API_", "TENANTFORM_"))}
    return env


def _up(data_dir: Path, port: int, prefect_port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            TENANTFORM,
            "up",
            "--port",
            str(port),
            "--prefect-port",
            str(prefect_port),
            "--data-dir",
            str(data_dir),
        ],
        env=_env(),
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_up(proc: subprocess.Popen[bytes], log: Path) -> str:
    wait_until(lambda: "tenantform is up" in log.read_text() or proc.poll() is not None, 240, "tenantform up")
    text = log.read_text()
    assert proc.poll() is None, text
    return text


def _stop(proc: subprocess.Popen[bytes]) -> list[int]:
    family = descendants(proc.pid)
    assert family, "up started no children"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 0
    return [pid for pid in family if alive(pid)]


def test_up_serves_a_request_stops_cleanly_and_remembers(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port, prefect_port = free_port(), free_port()
    log = tmp_path / "up.log"
    proc = _up(data_dir, port, prefect_port, log)
    try:
        banner = _wait_up(proc, log)
        key = (data_dir / "api-key").read_text().strip()
        assert (data_dir / "api-key").stat().st_mode & 0o777 == 0o600
        for expected in (f"http://127.0.0.1:{port}/docs", f"http://127.0.0.1:{prefect_port}", key):
            assert expected in banner
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=10)
        request_id = gateway.post("/provision", json=REQUEST).json()["request_id"]
        wait_until(
            lambda: gateway.get(f"/status/{request_id}").json()["status"] != "in_progress",
            180,
            "the provision",
        )
        assert gateway.get(f"/status/{request_id}").json()["status"] == "completed"
    finally:
        left = _stop(proc) if proc.poll() is None else []
    assert left == [], f"processes left behind: {left}"
    assert "stopped." in log.read_text()

    proc = _up(data_dir, port, prefect_port, log)
    try:
        _wait_up(proc, log)
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=10)
        status = gateway.get(f"/status/{request_id}").json()
        assert status["status"] == "completed" and len(status["instances"]) == 2
        assert gateway.get("/api/clients").json()["total"] == 1
        run = gateway.get(f"/api/runs/{request_id}").json()
        assert run["tasks"], "the second up reads the first up's Prefect runs"
    finally:
        left = _stop(proc) if proc.poll() is None else []
    assert left == []


def test_up_says_clearly_when_a_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                TENANTFORM,
                "up",
                "--port",
                str(port),
                "--prefect-port",
                str(free_port()),
                "--data-dir",
                str(tmp_path / "d"),
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    time.sleep(0)  # nothing was started, so nothing to stop
