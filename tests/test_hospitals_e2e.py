"""The hospital document's curl examples against the gateway with a real worker, on the
embedded default (local-hospital on localcloud, a SQLite database): register → status →
create-tables → sub-hospital → outputs → delete."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("worker")


def wait_for(gateway: Any, path: str, done: Any, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = gateway.get(path).json()
        if done(body):
            return body
        time.sleep(0.5)
    raise TimeoutError(f"{path}: {body}")


def test_register_create_tables_sub_hospital_outputs_delete(gateway: Any) -> None:
    parent = str(uuid.uuid4())
    body = {
        "client_name": "City General Hospital",
        "client_uuid": parent,
        "environment": "prod",
        "region": "me-central2",
    }
    accepted = gateway.post("/api/hospitals/register", json=body)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["client_uuid"] == parent
    assert (
        gateway.post("/api/hospitals/register", json=body).json()["request_id"]
        == accepted.json()["request_id"]
    )
    clash = gateway.post("/api/hospitals/register", json={**body, "client_name": "Another Name"})
    assert clash.status_code == 409

    # A sub-hospital registered before its parent is ready waits for it.
    child = str(uuid.uuid4())
    sub = gateway.post(
        f"/api/hospitals/{parent}/sub-hospitals/register",
        json={
            "client_name": "City General - Branch A",
            "client_uuid": child,
            "environment": "prod",
            "region": "me-central2",
        },
    )
    assert sub.status_code == 202, sub.text

    status = wait_for(
        gateway, f"/api/hospitals/{parent}/status", lambda b: b["status"] in ("ready", "failed")
    )
    assert status["status"] == "ready", status
    outputs = gateway.get(f"/api/clients/{parent}/outputs").json()["outputs"]
    assert outputs["database_name"] == "city_general_hospital"
    assert outputs["connection_secret"].startswith("localcloud/secrets/")
    assert parent in outputs["private_bucket"] and parent in outputs["network_name"]
    assert "password" not in str(outputs).lower() and "sqlite://" not in str(outputs)

    tables = gateway.post(f"/api/hospitals/{parent}/create-tables")
    assert tables.status_code == 202
    run = wait_for(
        gateway, f"/api/runs/{tables.json()['request_id']}", lambda b: b["status"] in ("completed", "failed")
    )
    assert run["status"] == "completed", run
    assert run["result"]["outputs"]["applied_versions"] == ["0001", "0002"]
    data = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud"
    db_file = next((data / "sql-data").glob(f"{outputs['sql_instance_id']}/city_general_hospital.db"))
    with sqlite3.connect(db_file) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"patients", "staff", "appointments", "schema_migrations"} <= names
    again = gateway.post(f"/api/hospitals/{parent}/create-tables")
    rerun = wait_for(
        gateway, f"/api/runs/{again.json()['request_id']}", lambda b: b["status"] in ("completed", "failed")
    )
    assert rerun["result"]["outputs"]["applied_versions"] == []

    sub_status = wait_for(
        gateway, f"/api/hospitals/{child}/status", lambda b: b["status"] in ("ready", "failed")
    )
    assert sub_status["status"] == "ready", sub_status
    assert sub_status["parent_uuid"] == parent
    sub_outputs = gateway.get(f"/api/clients/{child}/outputs").json()["outputs"]
    assert sub_outputs["sql_instance_id"] == outputs["sql_instance_id"]  # shared instance
    assert sub_outputs["database_name"] == "city_general_branch_a"
    assert sub_outputs["connection_secret"] != outputs["connection_secret"]

    listed = gateway.get("/api/hospitals").json()
    assert {c["client_uuid"] for c in listed["clients"]} >= {parent, child}

    refused = gateway.delete(f"/api/clients/{parent}")
    assert refused.status_code == 409 and child in refused.json()["detail"]
    assert gateway.delete(f"/api/clients/{parent}", params={"cascade": "true"}).status_code == 202
    wait_for(gateway, f"/api/clients/{parent}/status", lambda b: b["status"] in ("destroyed", "failed"))
    assert gateway.get(f"/api/clients/{child}/status").json()["status"] == "destroyed"
    assert gateway.get(f"/api/clients/{parent}/status").json()["status"] == "destroyed"
    leftovers = [
        p
        for p in data.glob("sql_databases/*.json")
        if parent in p.read_text() or "city_general" in p.read_text()
    ]
    assert leftovers == []
    assert not db_file.exists()


def _hospital(name: str, client_uuid: str) -> dict[str, str]:
    return {"client_name": name, "client_uuid": client_uuid, "environment": "dev", "region": "me-central2"}


def _unknown(gateway: Any, client_uuid: str) -> bool:
    return bool(gateway.get(f"/api/clients/{client_uuid}/status").status_code == 404)


def test_sub_hospital_of_a_missing_failed_or_destroyed_parent_is_refused(gateway: Any) -> None:
    """Under an unknown parent: 404. Under a parent that failed (localcloud refuses its
    network): the sub-hospital that was waiting for it fails naming it, a new one is
    refused. Under a destroyed parent: refused. A refused sub-hospital is not recorded."""
    orphan = str(uuid.uuid4())
    missing = gateway.post(
        f"/api/hospitals/{uuid.uuid4()}/sub-hospitals/register", json=_hospital("Orphan", orphan)
    )
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    assert _unknown(gateway, orphan)

    failed = str(uuid.uuid4())
    faults = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud" / "_faults"
    faults.mkdir(parents=True, exist_ok=True)
    marker = faults / f"refuse-vpc-{failed}"
    marker.touch()
    try:
        assert gateway.post("/api/hospitals/register", json=_hospital("Doomed", failed)).status_code == 202
        waiting = gateway.post(
            f"/api/hospitals/{failed}/sub-hospitals/register",
            json=_hospital("Doomed Wing", str(uuid.uuid4())),
        )
        assert waiting.status_code == 202, "the parent has not failed yet: its sub-hospital waits"
        parent = wait_for(
            gateway, f"/api/hospitals/{failed}/status", lambda b: b["status"] in ("ready", "failed")
        )
    finally:
        marker.unlink()
    assert parent["status"] == "failed", parent
    assert "injected permanent failure" in parent["message"], parent
    run = wait_for(
        gateway,
        f"/api/runs/{waiting.json()['request_id']}",
        lambda b: b["status"] in ("completed", "failed", "cancelled"),
    )
    assert run["status"] == "failed", run
    assert run["message"] == f"parent {failed} failed: {parent['message']}"
    assert run["flow_run_id"] is None, "it never reached Prefect"
    late = str(uuid.uuid4())
    refused = gateway.post(f"/api/hospitals/{failed}/sub-hospitals/register", json=_hospital("Late", late))
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == f"parent {failed} is failed: {parent['message']}"
    assert _unknown(gateway, late)

    gone = str(uuid.uuid4())
    assert gateway.post("/api/hospitals/register", json=_hospital("Gone General", gone)).status_code == 202
    ready = wait_for(gateway, f"/api/hospitals/{gone}/status", lambda b: b["status"] in ("ready", "failed"))
    assert ready["status"] == "ready", ready
    assert gateway.delete(f"/api/clients/{gone}").status_code == 202
    destroyed = wait_for(
        gateway, f"/api/clients/{gone}/status", lambda b: b["status"] in ("destroyed", "failed")
    )
    assert destroyed["status"] == "destroyed", destroyed
    after = str(uuid.uuid4())
    refused = gateway.post(f"/api/hospitals/{gone}/sub-hospitals/register", json=_hospital("After", after))
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == f"parent {gone} is destroyed"
    assert _unknown(gateway, after)
