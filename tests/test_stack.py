"""``tenantform up`` as a user runs it: a subprocess on free ports, one request over real
HTTP, SIGTERM, nothing left behind; then a second ``up`` on the same data dir."""

from __future__ import annotations

import contextlib
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


def _up(
    data_dir: Path, port: int, prefect_port: int, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
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
        env={**_env(), **(extra_env or {})},
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


ENDED = ("completed", "failed", "cancelled")


def _power_cut(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the launcher and everything under it at once: nothing gets to clean up."""
    family = [proc.pid, *descendants(proc.pid)]
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    wait_until(lambda: not any(alive(p) for p in family), 30, "the killed stack to be gone")


def test_the_whole_stack_killed_mid_apply_heals_on_the_next_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port, prefect_port = free_port(), free_port()
    log = tmp_path / "up.log"
    slow = {"LOCALCLOUD_CREATE_DELAY_SECONDS": "300", "LOCALCLOUD_DELAY_NAME_PREFIX": "slow"}
    proc = _up(data_dir, port, prefect_port, log, extra_env=slow)
    try:
        _wait_up(proc, log)
        key = (data_dir / "api-key").read_text().strip()
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=10)
        body = {**REQUEST, "count": 1, "instance_name_prefix": "slow-power"}
        run_id = gateway.post("/provision", json=body).json()["request_id"]

        def applying() -> bool:
            tasks = gateway.get(f"/api/runs/{run_id}").json().get("tasks") or []
            return any(t["name"].startswith("terraform-apply") and t["state"] == "Running" for t in tasks)

        wait_until(applying, 180, "terraform-apply to start")
    finally:
        _power_cut(proc)

    log = tmp_path / "up-again.log"
    proc = _up(data_dir, port, prefect_port, log)
    try:
        _wait_up(proc, log)
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=10)
        wait_until(
            lambda: gateway.get(f"/api/runs/{run_id}").json()["status"] in ("failed", "completed"),
            180,
            "the interrupted run to end",
        )
        run = gateway.get(f"/api/runs/{run_id}").json()
        assert run["status"] == "failed" and "stack stopped" in run["message"], run
        client_id = run["client_uuid"]

        def finished(accepted: httpx.Response) -> dict[str, object]:
            assert accepted.status_code == 202, accepted.text
            rid = accepted.json()["request_id"]
            wait_until(
                lambda: (
                    gateway.get(f"/api/runs/{rid}").json()["status"] in ("completed", "failed", "cancelled")
                ),
                120,
                f"run {rid}",
            )
            result: dict[str, object] = gateway.get(f"/api/runs/{rid}").json()
            return result

        assert finished(gateway.post(f"/api/clients/{client_id}/plan"))["status"] == "completed"
        patched = finished(
            gateway.patch(f"/api/clients/{client_id}", json={"instance_name_prefix": "healed"})
        )
        assert patched["status"] == "completed", patched
        assert finished(gateway.delete(f"/api/clients/{client_id}"))["status"] == "completed"
    finally:
        left = _stop(proc) if proc.poll() is None else []
    assert left == []
