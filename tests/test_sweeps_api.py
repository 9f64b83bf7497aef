"""Sweeps asked through the API answer at once, whatever Prefect is doing: the request is
written to the registry and the dispatcher hands it to Prefect like every run. Here
Prefect's address takes connections and never answers (a server stuck on its database).
The end to end sweep, dispatched to a real Prefect, is in tests/test_reconcile.py."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.clients.service import ClientService
from api.registry.db import Registry
from api.registry.models import RunStatus
from api.runs.service import RunService
from tests.support import free_port, http_ok, start_gateway, stop_process, wait_until

KEY = "sweeps-key-0123456789"
ANSWER_WITHIN = 5.0
"""A bound on the whole exchange, far above the route's own cost and far below Prefect's
retries; passing it means the route did not wait on Prefect."""


@pytest.fixture
def stuck_prefect() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # accepts connections into the backlog, never answers
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/api"


def _ready_client(database_url: str) -> str:
    registry = Registry(database_url)
    registry.migrate()
    service = ClientService(registry)
    inputs = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "sw", "count": 1}
    accepted = service.create_client(kind="instances", target="local", inputs=inputs)
    runs = RunService(registry)
    runs.dispatched(accepted.run.id, str(uuid.uuid4()))
    runs.end(accepted.run.id, RunStatus.completed, "built")
    registry.dispose()
    return accepted.run.client_id


def test_reconcile_routes_answer_at_once_while_prefect_hangs(tmp_path: Path, stuck_prefect: str) -> None:
    database_url = f"sqlite:///{tmp_path / 'registry.db'}"
    client_id = _ready_client(database_url)
    port = free_port()
    env = {
        **os.environ,
        "API_KEY": KEY,
        "DATABASE_URL": database_url,
        "TENANTFORM_DATA_DIR": str(tmp_path / "data"),
        "PREFECT_API_URL": stuck_prefect,
    }
    proc = start_gateway(env, port, tmp_path / "gateway.log")
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/openapi.json"), 60, "the gateway")
        gateway = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=ANSWER_WITHIN
        )
        fleet = gateway.post("/api/reconcile")
        assert fleet.status_code == 202, fleet.text
        assert fleet.json()["clients"] == 1 and fleet.json()["status"] == "accepted"
        one = gateway.post(f"/api/clients/{client_id}/reconcile")
        assert one.status_code == 202, one.text
        sweep = gateway.get(f"/api/sweeps/{one.json()['sweep_id']}").json()
        assert sweep["status"] == "accepted" and sweep["flow_run_id"] is None, sweep

        narrowed = gateway.post("/api/reconcile", json={"target": "local-hospital"})
        assert narrowed.status_code == 202
        assert narrowed.json()["status"] == "failed" and "no client matches" in narrowed.json()["message"]
        assert gateway.get(f"/api/sweeps/{uuid.uuid4()}").status_code == 404
        assert gateway.post(f"/api/clients/{uuid.uuid4()}/reconcile").status_code == 404
        bad = gateway.post("/api/reconcile", json={"status": "sleeping"})
        assert bad.status_code == 422 and "status" in bad.text
    finally:
        stop_process(proc)
