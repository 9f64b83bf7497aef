"""After a full hospital cycle (register, sub-hospital, create-tables, outputs, delete), the
generated passwords and connection strings appear nowhere a person or another system can
read: API answers, the worker's log, Prefect's flow-run parameters, logs and artifacts,
files under the data dir (those that must hold one are 0600 or inside a 0700 directory),
and the registry; neither as written nor JSON-escaped."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import _SESSION_DIR
from tests.test_hospitals_e2e import wait_for

pytestmark = pytest.mark.usefixtures("worker")

DONE = ("completed", "failed", "cancelled")


def _forms(secret: str) -> set[str]:
    """As written, JSON-escaped (Python's and Go's), and URL-quoted (in a connection string)."""
    go = json.dumps(secret, ensure_ascii=False)[1:-1]
    go = go.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return {secret, go, json.dumps(secret)[1:-1], quote(secret, safe="")}


def _secrets(data: Path, clients: set[str]) -> dict[str, list[str]]:
    """The passwords localcloud generated for these clients and the connection strings it
    stored for them, read from the clients' own Terraform state: nothing of other tests."""
    found: dict[str, list[str]] = {"localcloud_password": [], "localcloud_secret": []}
    field = {"localcloud_password": "result", "localcloud_secret": "value"}
    for client in sorted(clients):
        state = json.loads((data / "state" / client / "terraform.tfstate").read_text())
        for resource in state["resources"]:
            if resource["type"] in found:
                for instance in resource["instances"]:
                    found[resource["type"]].append(instance["attributes"][field[resource["type"]]])
    return found


def _registry(db: Path) -> str:
    """The registry as SQLite keeps it: the database file and, in WAL mode, its -wal and
    -shm files (where the latest writes are until a checkpoint), or a rollback journal."""
    files = [db.with_name(db.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    return "\n".join(f.read_bytes().decode("utf-8", "replace") for f in files if f.exists())


def _guarded(path: Path, root: Path) -> bool:
    """0600, or inside a directory (below the data dir) that only its owner may enter."""
    if path.stat().st_mode & 0o077 == 0:
        return True
    parent = path.parent
    while parent != root and root in parent.parents:
        if parent.stat().st_mode & 0o077 == 0:
            return True
        parent = parent.parent
    return False


def test_no_secret_leaks_anywhere(gateway: Any, tmp_path: Path) -> None:
    answers: list[str] = []

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = gateway.request(method, path, **kwargs)
        answers.append(response.text)
        return response

    parent, child = str(uuid.uuid4()), str(uuid.uuid4())
    body = {
        "client_name": "Scan General",
        "client_uuid": parent,
        "environment": "dev",
        "region": "me-central2",
    }
    call("POST", "/api/hospitals/register", json=body)
    call(
        "POST",
        f"/api/hospitals/{parent}/sub-hospitals/register",
        json={**body, "client_uuid": child, "client_name": "Scan General - Branch"},
    )
    for cid in (parent, child):
        status = wait_for(
            gateway, f"/api/hospitals/{cid}/status", lambda b: b["status"] in ("ready", "failed")
        )
        assert status["status"] == "ready", status
        answers.append(json.dumps(status))
    tables = call("POST", f"/api/hospitals/{parent}/create-tables").json()
    assert (
        wait_for(gateway, f"/api/runs/{tables['request_id']}", lambda b: b["status"] in DONE)["status"]
        == "completed"
    )
    for cid in (parent, child):
        call("GET", f"/api/clients/{cid}/outputs")
        call("GET", f"/api/clients/{cid}/status")
        for run in call("GET", f"/api/clients/{cid}/runs").json()["runs"]:
            call("GET", f"/api/runs/{run['request_id']}", params={"logs": "true"})

    data = Path(os.environ["TENANTFORM_DATA_DIR"])
    found = _secrets(data, {parent, child})
    passwords, connections = found["localcloud_password"], found["localcloud_secret"]
    assert len(set(passwords)) == 2, "one password per hospital"
    assert len(set(connections)) == 2, "one connection string per hospital"
    forms = {f for s in passwords + connections for f in _forms(s)}

    def files_holding_secrets() -> list[Path]:
        holding = []
        for path in data.rglob("*"):
            if path.is_file() and not path.is_symlink():
                content = path.read_bytes().decode("utf-8", "replace")
                if any(f in content for f in forms):
                    holding.append(path)
        return holding

    exposed = [p for p in files_holding_secrets() if not _guarded(p, data)]
    assert exposed == [], f"world-readable files hold secrets: {exposed}"

    gone = call("DELETE", f"/api/clients/{parent}", params={"cascade": "true"}).json()
    wait_for(gateway, f"/api/clients/{parent}/status", lambda b: b["status"] in ("destroyed", "failed"))
    assert gateway.get(f"/api/runs/{gone['request_id']}").json()["status"] == "completed"

    readable: dict[str, str] = {"API answers": "\n".join(answers)}
    readable["worker log"] = (_SESSION_DIR / "worker.log").read_text(errors="replace")
    readable["registry"] = _registry(tmp_path / "registry.db")
    assert parent in readable["registry"] and child in readable["registry"], "the registry was read"
    readable.update(_prefect_views({parent, child}))
    leaks = {where for where, text in readable.items() for f in forms if f in text}
    assert leaks == set(), f"secrets found in: {sorted(leaks)}"
    exposed = [p for p in files_holding_secrets() if not _guarded(p, data)]
    assert exposed == [], f"world-readable files hold secrets: {exposed}"


def _prefect_views(clients: set[str]) -> dict[str, str]:
    """Flow-run parameters, logs and artifacts of the clients' runs, through the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterTags,
        LogFilter,
        LogFilterFlowRunId,
    )

    views: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["tenantform"]))
        ) + [
            r
            for c in clients
            for r in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"client:{c}"]))
            )
        ]
        ids = list({r.id for r in runs})
        assert ids, "the clients' flow runs are in Prefect"
        views["flow-run parameters"] = json.dumps([r.parameters for r in runs], default=str)
        logs = []
        for offset in range(0, 20_000, 200):
            page = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), limit=200, offset=offset
            )
            logs.extend(log.message for log in page)
            if len(page) < 200:
                break
        views["Prefect logs"] = "\n".join(logs)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
        views["Prefect artifacts"] = json.dumps([a.data for a in artifacts], default=str)
    return views


def test_fake_aws_credentials_reach_nothing_readable(
    settings: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """An AWS run whose pre-flight presents credentials the cloud refuses (fake, with the
    characters Terraform's JSON escapes): the run fails naming the credentials, and the
    secret key is in no output, Prefect parameter, log or artifact, nor any file."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    from flows import provision as flows
    from tests.support import flow_params, free_port

    secret = f'fake/Secret+{uuid.uuid4().hex}<&>"\\x'
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing answers
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    inputs = {
        "cloud_provider": "aws",
        "instance_name_prefix": "scan",
        "count": 1,
        "provider_config": {
            "region": "us-east-2",
            "instance_type": "t2.micro",
            "subnet_id": "subnet-12345",
            "security_group_ids": ["sg-12345"],
            "ami_id": "ami-12345",
        },
    }
    state = flows.provision(params=flow_params(str(uuid.uuid4()), "aws-ec2", inputs), return_state=True)
    assert state.is_failed()
    assert "AWS credentials rejected in us-east-2" in (state.message or ""), state.message

    forms = _forms(secret)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    assert logs, "the run's logs were read"
    captured = capfd.readouterr()
    readable = {
        "output": captured.out + captured.err,
        "state message": state.message or "",
        "flow-run parameters": json.dumps(flow_run.parameters, default=str),
        "Prefect logs": "\n".join(log.message for log in logs),
        "Prefect artifacts": json.dumps([a.data for a in artifacts], default=str),
    }
    for path in settings.root.rglob("*"):
        if path.is_file():
            readable[str(path)] = path.read_bytes().decode("utf-8", "replace")
    leaks = {where for where, text in readable.items() for f in forms if f in text}
    assert leaks == set(), f"the AWS secret key found in: {sorted(leaks)}"
