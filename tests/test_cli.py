"""The `tenantform` CLI as a person or a script uses it: against a live gateway (uvicorn)
and a real worker, with exit codes and --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, gateway_env, http_ok, start_gateway, stop_process, wait_until

pytestmark = pytest.mark.usefixtures("worker")
KEY = "cli-key-0123456789"
TENANTFORM = str(Path(sys.executable).parent / "tenantform")


@pytest.fixture
def cli_env(tmp_path: Path, prefect_server: str) -> Iterator[dict[str, str]]:
    port = free_port()
    proc = start_gateway(gateway_env(tmp_path, prefect_server, KEY), port, tmp_path / "gateway.log")
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/openapi.json"), 60, "the gateway")
        yield {**os.environ, "TENANTFORM_URL": f"http://127.0.0.1:{port}", "API_KEY": KEY}
    finally:
        stop_process(proc)


def tf(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TENANTFORM, *args], env=env, capture_output=True, text=True, timeout=300)


def test_provision_list_logs_delete_and_doctor(cli_env: dict[str, str]) -> None:
    done = tf(cli_env, "provision", "--prefix", "cli", "--count", "1", "--wait", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "completed"
    client_id = run["client_uuid"]

    listed = tf(cli_env, "clients", "list", "--json")
    assert listed.returncode == 0 and client_id in [
        c["client_uuid"] for c in json.loads(listed.stdout)["clients"]
    ]
    table = tf(cli_env, "clients", "list")
    assert table.returncode == 0 and "ready" in table.stdout
    outputs = json.loads(tf(cli_env, "clients", "outputs", client_id, "--json").stdout)
    assert len(outputs["outputs"]["instances"]) == 1
    logs = tf(cli_env, "runs", "logs", run["request_id"], "--follow")
    assert logs.returncode == 0 and "Apply complete" in logs.stdout

    gone = tf(cli_env, "clients", "delete", client_id, "--wait", "--json")
    assert gone.returncode == 0 and json.loads(gone.stdout)["status"] == "completed"

    doctor = tf(cli_env, "doctor", "--json")
    findings = {f["check"]: f for f in json.loads(doctor.stdout)}
    assert findings["Terraform"]["status"] == "ok" and "1.0.3" in findings["Terraform"]["detail"]
    assert findings["gateway"]["status"] == "ok" and findings["Prefect API"]["status"] == "ok"
    assert doctor.returncode == 0, doctor.stdout


def test_exit_codes_say_what_went_wrong(cli_env: dict[str, str]) -> None:
    assert tf(cli_env, "provision", "--count", "1").returncode == 2, "a missing option is bad usage"
    missing = tf(cli_env, "clients", "show", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1 and "404" in missing.stdout
    assert tf({**cli_env, "API_KEY": "wrong-key-123"}, "clients", "list").returncode == 1
    nobody = tf({**cli_env, "TENANTFORM_URL": f"http://127.0.0.1:{free_port()}"}, "clients", "list")
    assert nobody.returncode == 2 and "no gateway" in nobody.stdout
    doctor = tf({**cli_env, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}, "doctor")
    assert doctor.returncode == 1 and "Prefect API" in doctor.stdout
