"""API keys: scopes, rotation without a restart, the key each run records, digests only
in the registry, a per-key rate limit with 429 and Retry-After. No worker: accepted runs
never need to reach Prefect here."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REQUEST = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "keyed", "count": 1}


def _key(gateway: Any, scope: str) -> dict[str, Any]:
    created = gateway.post("/api/keys", json={"name": f"{scope}-key", "scope": scope})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    assert body["key"].startswith(body["prefix"])
    return body


def test_scopes_rotation_and_who_started_a_run(gateway: Any, tmp_path: Path) -> None:
    reader, writer = _key(gateway, "read"), _key(gateway, "write")
    as_reader = {"X-API-Key": reader["key"]}
    as_writer = {"X-API-Key": writer["key"]}

    assert gateway.get("/api/clients", headers=as_reader).status_code == 200
    refused = gateway.post("/provision", json=REQUEST, headers=as_reader)
    assert refused.status_code == 403 and "write needed" in refused.json()["detail"]
    assert gateway.get("/api/keys", headers=as_writer).status_code == 403, "keys need admin"

    accepted = gateway.post("/provision", json=REQUEST, headers=as_writer)
    assert accepted.status_code == 202
    run = gateway.get(f"/api/runs/{accepted.json()['request_id']}", headers=as_reader).json()
    assert run["started_by"] == f"key:{writer['id']}"
    bootstrap_run = gateway.post("/provision", json={**REQUEST, "instance_name_prefix": "boot"}).json()
    assert gateway.get(f"/api/runs/{bootstrap_run['request_id']}").json()["started_by"] == "bootstrap"

    listed = gateway.get("/api/keys").json()
    assert {k["id"] for k in listed} >= {reader["id"], writer["id"]}
    assert all("key" not in k for k in listed), "a key is shown once, at creation"
    with sqlite3.connect(tmp_path / "registry.db") as db:
        dump = "\n".join(db.iterdump())
    assert writer["key"] not in dump and reader["key"] not in dump, "only digests are stored"

    assert gateway.delete(f"/api/keys/{writer['id']}").json()["revoked_at"]
    assert gateway.post("/provision", json=REQUEST, headers=as_writer).status_code == 401
    assert gateway.get("/api/clients", headers=as_reader).status_code == 200, "other keys keep working"


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: str) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import get_gateway_settings

    monkeypatch.setenv("API_KEY", "limited-bootstrap-key")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'limited.db'}")
    monkeypatch.setenv("RATE_LIMIT_PER_SECOND", "0.5")
    monkeypatch.setenv("RATE_LIMIT_BURST", "3")
    get_gateway_settings.cache_clear()
    with TestClient(create_app(), headers={"X-API-Key": "limited-bootstrap-key"}) as client:
        yield client
    get_gateway_settings.cache_clear()


def test_each_key_has_its_own_rate_limit(limited: Any) -> None:
    other = _key(limited, "read")  # the bootstrap key's first request
    answers = [limited.get("/api/clients") for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert answers[2].status_code == 429
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert "rate limit" in answers[2].json()["detail"]
    assert limited.get("/api/clients", headers={"X-API-Key": other["key"]}).status_code == 200
