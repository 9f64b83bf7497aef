"""The `tenantform` CLI as a person or a script uses it: against a live gateway (uvicorn)
and a real worker, with exit codes and --json."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def _deployments_told(url: str) -> Iterator[None]:
    from deployments.apply import apply_deployments

    asyncio.run(apply_deployments(extra_job_env={"TENANTFORM_GATEWAY_URL": url, "API_KEY": KEY}))
    try:
        yield
    finally:
        asyncio.run(apply_deployments())


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


def _json_commands() -> set[str]:
    """Every command (``group name``) that takes --json, read from the app itself."""
    import typer.main

    from deployments.cli import app

    found: set[str] = set()

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        elif any("--json" in getattr(p, "opts", ()) for p in command.params):
            found.add(" ".join(path))

    walk(typer.main.get_command(app), ())
    return found


def test_json_means_json_on_stdout_on_every_command_that_takes_it(cli_env: dict[str, str]) -> None:
    def as_json(*args: str) -> Any:
        done = tf(cli_env, *args, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)  # nothing but the JSON answer on stdout

    run_id = as_json("provision", "--prefix", "jsn", "--count", "1")["request_id"]
    assert as_json("runs", "show", run_id)["request_id"] == run_id
    wait_until(lambda: as_json("runs", "show", run_id)["status"] == "completed", 120, "the provision")
    client_id = as_json("runs", "show", run_id)["client_uuid"]
    assert as_json("clients", "show", client_id)["client_uuid"] == client_id
    assert as_json("clients", "outputs", client_id)["outputs"]["instances"]
    assert client_id in [c["client_uuid"] for c in as_json("clients", "list")["clients"]]
    key = as_json("keys", "create", "--name", "ci", "--scope", "read")
    assert key["key"] and key["scope"] == "read"
    assert key["id"] in [k["id"] for k in as_json("keys", "list")]
    assert as_json("keys", "revoke", str(key["id"]))["revoked_at"]
    assert as_json("clients", "delete", client_id, "--wait")["status"] == "completed"
    assert {f["check"] for f in as_json("doctor")} >= {"Terraform", "gateway", "policies"}
    assert all(t["passed"] for t in as_json("policy", "test")["tests"])
    revision = as_json("runs", "show", run_id)["revision"]
    # The rollout's flow run is told where this gateway is (as `up` tells it), and its first
    # wave has a manual gate: asked to pause, it is accepted, running or paused, never
    # already ended (it has no client to move, and a warm worker starts it in a second).
    waves = [{"count": 1, "gate": "manual"}, {}]
    spec = json.dumps({"target": "local", "revision": revision, "waves": waves})
    with _deployments_told(cli_env["TENANTFORM_URL"]):
        started = subprocess.run(
            [TENANTFORM, "rollouts", "start", "-", "--json"],
            input=spec,
            env=cli_env,
            capture_output=True,
            text=True,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        rid = json.loads(started.stdout)["rollout_id"]
        assert as_json("rollouts", "show", rid)["rollout_id"] == rid
        assert rid in [r["rollout_id"] for r in as_json("rollouts", "list")["rollouts"]]
        assert as_json("rollouts", "pause", rid)["rollout_id"] == rid
        wait_until(lambda: as_json("rollouts", "show", rid)["status"] == "paused", 120, "the manual gate")
        assert as_json("rollouts", "abort", rid)["status"] == "aborted"
    assert tf(cli_env, "rollouts", "resume", rid, "--json").returncode == 1, "an aborted rollout ends"
    refused = tf(cli_env, "rollouts", "rollback", rid, "--json")
    assert refused.returncode == 1 and refused.stdout == "", "nothing was upgraded: nothing to roll back"
    covered = {
        "provision", "runs show", "clients show", "clients outputs", "clients list",
        "keys create", "keys list", "keys revoke", "clients delete", "doctor", "policy test",
        "rollouts start", "rollouts show", "rollouts list", "rollouts pause", "rollouts resume",
        "rollouts abort", "rollouts rollback",
    }  # fmt: skip
    assert _json_commands() == covered, "a command takes --json this test does not try"

    # Without --json: for people, not JSON. With it, a refusal leaves stdout empty.
    shown = tf(cli_env, "clients", "show", client_id)
    assert shown.returncode == 0 and f"client_uuid: {client_id}" in shown.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(shown.stdout)
    missing = tf(cli_env, "clients", "show", "00000000-0000-0000-0000-000000000000", "--json")
    assert missing.returncode == 1 and missing.stdout == "" and "404" in missing.stderr
