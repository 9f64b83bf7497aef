"""``tenantform up`` and ``tenantform worker`` as a user runs them: subprocesses on free
ports, a request over real HTTP; SIGKILL and SIGTERM each leave nothing behind within
docker's 10 s grace, and the next ``up`` on the same ports and data dir starts (ending, by
its pid file, whatever an earlier one left running)."""

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


GRACE = 10
"""Docker's, systemd's and Kubernetes' default wait between SIGTERM and SIGKILL."""


def _stop(proc: subprocess.Popen[bytes], signum: signal.Signals = signal.SIGTERM) -> list[int]:
    """Signal the launcher; what of its family is still there after GRACE seconds."""
    family = descendants(proc.pid)
    assert family, "up started no children"
    proc.send_signal(signum)
    code = proc.wait(timeout=GRACE)
    assert code == (0 if signum == signal.SIGTERM else -signum)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not any(alive(p) for p in family), GRACE, "the family to go")
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
        # The OOM killer, a closed terminal: the launcher gets no chance to stop anything.
        left = _stop(proc, signal.SIGKILL) if proc.poll() is None else []
    assert left == [], f"processes left behind by a SIGKILLed up: {left}"

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
    assert left == [], f"processes left behind by a SIGTERMed up: {left}"
    assert "stopped." in log.read_text()
    assert not (data_dir / "up.pid").exists()


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


def _strand(proc: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL the launcher and its watchdogs at once, leaving the Prefect server, worker,
    warm process and gateway running with nobody to end them; their pids."""
    watchdogs = _children_of(proc.pid)
    stranded = [p for w in watchdogs for p in descendants(w)]
    for pid in (proc.pid, *watchdogs):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert stranded and any(alive(p) for p in stranded)
    return stranded


def _children_of(pid: int) -> list[int]:
    return [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _ppid(stat) == pid]


def _ppid(stat: Path) -> int:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


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
        stranded = _strand(proc)

    log = tmp_path / "up-again.log"
    proc = _up(data_dir, port, prefect_port, log)
    try:
        text = _wait_up(proc, log)
        assert not any(alive(p) for p in stranded), "the next up ends what the last one left"
        assert "left running by an earlier tenantform up" in text, text
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
        for pid in stranded:  # should the next up have failed to end them, the test does
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert left == []


def test_worker_and_its_children_go_when_it_is_killed(prefect_server: str, tmp_path: Path) -> None:
    env = {**_env(), "PREFECT_API_URL": prefect_server, "TENANTFORM_DATA_DIR": str(tmp_path / "w")}
    log = tmp_path / "worker.log"
    proc = subprocess.Popen(
        [TENANTFORM, "worker", "--limit", "1"],
        env={**env, "PREFECT_SERVER_EPHEMERAL_ENABLED": "false"},
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: "worker polling" in log.read_text() or proc.poll() is not None, 120, "the worker")
        assert proc.poll() is None, log.read_text()
        wait_until(lambda: len(descendants(proc.pid)) >= 4, 60, "the worker's and warm's watchdogs")
    finally:
        left = _stop(proc, signal.SIGKILL) if proc.poll() is None else []
    assert left == [], f"processes left behind by a SIGKILLed worker: {left}"
