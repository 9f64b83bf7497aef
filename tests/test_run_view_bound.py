"""A run's view answers from the registry when Prefect does not answer: its tasks, progress
and logs are left out with the reason, within a bound; /health says Prefect is down. Seen
in CI: an overloaded Prefect server held `GET /api/runs/{id}` past a client's 30 s timeout.
Here Prefect is a real socket that accepts connections and never answers; the gateway is a
real uvicorn process."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import httpx

from api.clients.service import ClientService
from api.prefect_gateway import HEALTH_SECONDS
from api.registry.db import Registry
from api.routes.runs import DETAILS_SECONDS
from api.runs.service import RunService
from tests.support import free_port, gateway_env, start_gateway, stop_process, wait_until

KEY = "bound-key-0123456789"


def test_a_run_is_read_while_prefect_never_answers(tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)
    env = gateway_env(tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}/api", KEY)
    registry = Registry(env["DATABASE_URL"])
    registry.migrate()
    inputs = {"cloud_provider": "local", "instance_name_prefix": "bound", "count": 1}
    created = ClientService(registry).create_client(kind="instances", target="local", inputs=inputs)
    runs = RunService(registry)
    assert runs.admit(created.run.id) is not None
    assert runs.dispatched(created.run.id, str(uuid.uuid4()))
    registry.dispose()

    port = free_port()
    gateway_proc = start_gateway(env, port, tmp_path / "gateway.log")
    try:
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=60)
        wait_until(lambda: gateway.get("/health").status_code in (200, 503), 60, "the gateway")
        health = gateway.get("/health").json()
        down = f"down: no answer within {HEALTH_SECONDS:g} s"
        assert health["checks"] == {"registry": "ok", "prefect": down}, health
        for logs in ("false", "true"):
            answer = gateway.get(f"/api/runs/{created.run.id}", params={"logs": logs})
            assert answer.status_code == 200, answer.text
            view = answer.json()
            assert view["request_id"] == created.run.id and view["status"] == "in_progress", view
            assert view["tasks"] is None and view["logs"] is None and view["progress"] is None, view
            assert view["details_missing"] == (
                f"tasks, progress and logs left out: Prefect did not answer within {DETAILS_SECONDS:g} s"
            ), view
    finally:
        stop_process(gateway_proc)
        silent.close()
