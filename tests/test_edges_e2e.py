"""Edges through the gateway with the session worker, real Terraform and localcloud: a
revoked key's open event stream, a hospital name in Unicode, two sub-hospital names that
would name one database, and the reconcile schedule of prefect.yaml as Prefect holds it."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import API_KEY
from tests.support import wait_until
from tests.test_day_two import request, wait_run
from tests.test_progress import sse_events

LOCALCLOUD = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud"


# --- a revoked key and its open event stream -------------------------------------------


class KeyedFollower(threading.Thread):
    """Reads a run's event stream with a key of its own, in the background."""

    def __init__(self, gateway: Any, run_id: str, key: str) -> None:
        super().__init__(daemon=True)
        self.gateway, self.run_id, self.key = gateway, run_id, key
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.status_code = 0

    def run(self) -> None:
        path = f"/api/runs/{self.run_id}/events"
        with self.gateway.stream("GET", path, headers={"X-API-Key": self.key}) as response:
            self.status_code = response.status_code
            for event in sse_events(response.iter_lines()):
                self.events.append(event)


@pytest.mark.usefixtures("worker")
def test_a_revoked_key_ends_its_open_event_stream(gateway: Any) -> None:
    faults = LOCALCLOUD / "_faults"
    faults.mkdir(parents=True, exist_ok=True)
    held = faults / "delay-sseheld-"
    held.write_text("6")  # the run outlasts the stream by far
    try:
        reader = gateway.post("/api/keys", json={"name": "sse-reader", "scope": "read"}).json()
        run_id = gateway.post("/provision", json=request("sseheld-a")).json()["request_id"]
        follower = KeyedFollower(gateway, run_id, reader["key"])
        follower.start()
        wait_until(lambda: any(name == "status" for name, _ in follower.events), 30, "the stream to open")
        assert follower.status_code == 200

        assert gateway.delete(f"/api/keys/{reader['id']}").json()["revoked_at"]
        follower.join(timeout=15)
        assert not follower.is_alive(), "the stream outlived its key's revocation"
        running = gateway.get(f"/api/runs/{run_id}").json()
        assert running["status"] in ("accepted", "in_progress"), "it ended for the key, not the run"
        name, data = follower.events[-1]
        assert name == "error" and "revoked" in data["detail"], follower.events[-1]
        assert "end" not in [n for n, _ in follower.events]
        again = gateway.get(f"/api/runs/{run_id}/events", headers={"X-API-Key": reader["key"]})
        assert again.status_code == 401
    finally:
        held.unlink()
    assert wait_run(gateway, run_id)["status"] == "completed"


# --- hospital names ---------------------------------------------------------------------

UNICODE_NAME = "Hôpital Saint-Éloi 北京"


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory, prefect_server: str, worker: object) -> Iterator[Any]:
    """One gateway for the module: the sub-hospitals below hang off the hospital above."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import get_gateway_settings

    with pytest.MonkeyPatch.context() as env:
        env.setenv("API_KEY", API_KEY)
        env.setenv("DATABASE_URL", f"sqlite:///{tmp_path_factory.mktemp('hospitals') / 'registry.db'}")
        env.setenv("SYNC_INTERVAL_SECONDS", "0.5")
        get_gateway_settings.cache_clear()
        with TestClient(create_app(), headers={"X-API-Key": API_KEY}) as client:
            yield client
    get_gateway_settings.cache_clear()


def wait_ready(gateway: Any, client_uuid: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def settled() -> bool:
        found.update(gateway.get(f"/api/hospitals/{client_uuid}/status").json())
        return found["status"] in ("ready", "failed")

    wait_until(settled, 180, f"hospital {client_uuid}")
    assert found["status"] == "ready", found
    return found


def hospital_body(name: str, client_uuid: str | None = None) -> dict[str, Any]:
    return {
        "client_name": name,
        "client_uuid": client_uuid or str(uuid.uuid4()),
        "environment": "test",
        "region": "me-central2",
    }


@pytest.fixture(scope="module")
def unicode_hospital(hospitals: Any) -> dict[str, Any]:
    body = hospital_body(UNICODE_NAME)
    accepted = hospitals.post("/api/hospitals/register", json=body)
    assert accepted.status_code == 202, accepted.text
    wait_ready(hospitals, body["client_uuid"])
    return body


def stored(kind: str, **match: Any) -> list[dict[str, Any]]:
    """localcloud's objects of one kind whose fields match."""
    found = []
    for path in (LOCALCLOUD / kind).glob("*.json"):
        value = json.loads(path.read_text())
        if all(value.get(k) == v for k, v in match.items()):
            found.append(value)
    return found


def test_a_unicode_hospital_name_reaches_terraform(hospitals: Any, unicode_hospital: dict[str, Any]) -> None:
    cid = unicode_hospital["client_uuid"]
    view = hospitals.get(f"/api/hospitals/{cid}/status").json()
    assert view["name"] == UNICODE_NAME and view["inputs"]["client_name"] == UNICODE_NAME
    outputs = hospitals.get(f"/api/clients/{cid}/outputs").json()["outputs"]
    assert outputs["database_name"] == "hopital_saint_eloi", "accents folded, the CJK part dropped"

    network = stored("networks", name=f"vpc-{cid}")
    assert len(network) == 1 and network[0]["labels"]["client_name"] == UNICODE_NAME, network
    (instance,) = stored("sql_instances", id=outputs["sql_instance_id"])
    assert instance["labels"]["client_name"] == UNICODE_NAME
    (database,) = stored("sql_databases", instance_id=outputs["sql_instance_id"])
    assert database["name"] == "hopital_saint_eloi"
    assert (Path(instance["data_path"]) / "hopital_saint_eloi.db").is_file()


def test_sub_hospital_names_that_name_one_database_are_refused(
    hospitals: Any, unicode_hospital: dict[str, Any]
) -> None:
    parent = unicode_hospital["client_uuid"]
    path = f"/api/hospitals/{parent}/sub-hospitals/register"
    north, clash = hospital_body("North Wing"), hospital_body("north-wing")
    barrier = threading.Barrier(2)

    def register(body: dict[str, Any]) -> Any:
        barrier.wait()
        return hospitals.post(path, json=body)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(register, [north, clash]))
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    won, lost = (north, clash) if answers[0].status_code == 202 else (clash, north)
    refused = answers[1 if won is north else 0].json()["detail"]
    assert "client_name" in refused and "'north_wing'" in refused and won["client_uuid"] in refused, refused
    assert hospitals.get(f"/api/clients/{lost['client_uuid']}/status").status_code == 404

    like_parent = hospitals.post(path, json=hospital_body("Hopital Saint Eloi"))
    assert like_parent.status_code == 409, like_parent.text
    assert "client_name" in like_parent.json()["detail"] and "its parent" in like_parent.json()["detail"]
    again = hospitals.post(path, json=won)
    assert again.status_code == 202, "the same registration again is still the same request"

    wait_ready(hospitals, won["client_uuid"])
    outputs = hospitals.get(f"/api/clients/{won['client_uuid']}/outputs").json()["outputs"]
    parent_outputs = hospitals.get(f"/api/clients/{parent}/outputs").json()["outputs"]
    assert outputs["database_name"] == "north_wing"
    assert outputs["sql_instance_id"] == parent_outputs["sql_instance_id"]
    names = sorted(d["name"] for d in stored("sql_databases", instance_id=outputs["sql_instance_id"]))
    assert names == ["hopital_saint_eloi", "north_wing"], "one database per name, none shared"


# --- the reconcile schedule -------------------------------------------------------------


def reconcile_crons() -> list[str]:
    from prefect.client.orchestration import get_client

    from flows.contract import Operation
    from flows.workflows import workflow

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(workflow(Operation.reconcile).deployment_name)
    crons = []
    for schedule in deployment.schedules:
        assert schedule.active
        crons.append(str(getattr(schedule.schedule, "cron", None)))
    return crons


def test_the_reconcile_schedule_is_prefect_yaml_s_and_reconcile_cron_overrides_it(
    prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applied the way `tenantform up` and `tenantform deploy` apply the catalogue."""
    from deployments.apply import apply_deployments
    from flows.settings import get_settings
    from flows.workflows import PREFECT_YAML

    (written,) = [
        d for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"] if d["name"] == "reconcile"
    ]
    assert written["schedules"] == [{"cron": "*/15 * * * *"}]

    monkeypatch.setenv("RECONCILE_CRON", "0 3 * * *")
    get_settings.cache_clear()
    try:
        asyncio.run(apply_deployments())
        assert reconcile_crons() == ["0 3 * * *"]
    finally:
        monkeypatch.delenv("RECONCILE_CRON")
        get_settings.cache_clear()
        asyncio.run(apply_deployments())
    assert reconcile_crons() == ["*/15 * * * *"], "prefect.yaml's, in place of the override, not beside it"
