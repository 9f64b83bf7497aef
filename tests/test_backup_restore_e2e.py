"""The registry's GCS backup end to end, against fake-gcs-server over loopback: a gateway
with DATABASE_BACKUP_BUCKET provisions a client through the session worker, its backup
lands in the bucket while it runs, the registry file is deleted, and a new gateway on the
same settings starts from the backup with the client, its runs and its keys."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY
from tests.emulators.fake_gcs import fake_gcs
from tests.support import wait_until
from tests.test_day_two import instance_ids, provisioned

__all__ = ["fake_gcs"]


@contextmanager
def backed_up_gateway(monkeypatch: pytest.MonkeyPatch, registry: Path, bucket: str) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import get_gateway_settings

    monkeypatch.setenv("API_KEY", API_KEY)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{registry}")
    monkeypatch.setenv("SYNC_INTERVAL_SECONDS", "0.5")
    monkeypatch.setenv("DATABASE_BACKUP_BUCKET", bucket)
    monkeypatch.setenv("DATABASE_BACKUP_INTERVAL_SECONDS", "0.5")
    get_gateway_settings.cache_clear()
    try:
        with TestClient(create_app(), headers={"X-API-Key": API_KEY}) as client:
            yield client
    finally:
        get_gateway_settings.cache_clear()


def clients_in(snapshot: bytes, tmp_path: Path) -> dict[str, str]:
    """client id -> status, read from a backup as SQLite reads it."""
    copy = tmp_path / f"snapshot-{uuid.uuid4().hex}.db"
    copy.write_bytes(snapshot)
    with sqlite3.connect(copy) as conn:
        return dict(conn.execute("SELECT id, status FROM clients").fetchall())


@pytest.mark.usefixtures("worker")
def test_a_new_gateway_starts_from_the_backup_of_a_lost_registry(
    fake_gcs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.clouds.gcp import storage_client
    from flows.settings import Settings

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs)
    storage = storage_client(Settings())
    name = f"registry-{uuid.uuid4().hex[:12]}"
    created = storage.bucket(name)
    created.versioning_enabled = True
    bucket = storage.create_bucket(created)
    registry = tmp_path / "gateway" / "clients.db"
    registry.parent.mkdir()

    with backed_up_gateway(monkeypatch, registry, name) as first:
        cid = provisioned(first, "backedup")
        key = first.post("/api/keys", json={"name": "survivor", "scope": "read"}).json()
        before = first.get(f"/api/clients/{cid}/status").json()
        runs_before = first.get(f"/api/clients/{cid}/runs").json()

        def backed_up() -> bool:
            blob = bucket.get_blob("clients.db")
            return blob is not None and clients_in(blob.download_as_bytes(), tmp_path).get(cid) == "ready"

        wait_until(backed_up, 30, "a backup that holds the ready client, while the gateway runs")

    for leftover in registry.parent.glob("clients.db*"):  # the file, and any -wal/-shm beside it
        leftover.unlink()
    assert not registry.exists()

    with backed_up_gateway(monkeypatch, registry, name) as second:
        assert registry.exists(), "restored at start-up"
        after = second.get(f"/api/clients/{cid}/status").json()
        assert after == before
        assert second.get(f"/api/clients/{cid}/runs").json() == runs_before
        assert len(instance_ids(second, cid)) == 1
        run = second.get(f"/api/runs/{before['latest_run']['request_id']}").json()
        assert run["status"] == "completed" and run["tasks"], "its flow run is still found in Prefect"
        listed = second.get("/api/clients").json()
        assert [c["client_uuid"] for c in listed["clients"]] == [cid]
        assert second.get("/api/clients", headers={"X-API-Key": key["key"]}).status_code == 200
