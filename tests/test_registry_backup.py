"""Registry backups against fake-gcs-server over loopback: restore, consistency under
writes, generation preconditions between a stale and a fresh instance, final backup."""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.registry.backup import RegistryBackup, backup_from_settings
from api.settings import GatewaySettings
from flows.settings import Settings
from tests.emulators.fake_gcs import fake_gcs

__all__ = ["fake_gcs"]


@pytest.fixture
def bucket(fake_gcs: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs)
    from flows.clouds.gcp import storage_client

    client = storage_client(Settings())
    name = f"backups-{uuid.uuid4().hex[:12]}"
    created = client.bucket(name)
    created.versioning_enabled = True
    yield client.create_bucket(created)


def make_db(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS clients (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO clients (name) VALUES (?)", [(f"c{i}",) for i in range(rows)])


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM clients").fetchone()[0])


def test_backup_then_restore_into_a_missing_file(bucket: Any, tmp_path: Path) -> None:
    db = tmp_path / "a" / "clients.db"
    db.parent.mkdir()
    make_db(db, 5)
    first = RegistryBackup(db, bucket, "clients.db", 300)
    assert first.restore_if_missing() is False
    assert first.backup_now() is True
    assert first.backup_now() is False, "unchanged database must not make a new generation"

    fresh = tmp_path / "b" / "clients.db"
    second = RegistryBackup(fresh, bucket, "clients.db", 300)
    assert second.restore_if_missing() is True
    assert count(fresh) == 5
    assert second.generation == first.generation


def test_snapshot_is_consistent_while_another_connection_writes(bucket: Any, tmp_path: Path) -> None:
    db = tmp_path / "clients.db"
    make_db(db, 1)
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            make_db(db, 50)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        backup = RegistryBackup(db, bucket, "clients.db", 300)
        snapshots = [backup.snapshot() for _ in range(5)]
    finally:
        stop.set()
        thread.join()
    for i, data in enumerate(snapshots):
        copy = tmp_path / f"copy{i}.db"
        copy.write_bytes(data)
        with sqlite3.connect(copy) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_stale_instance_cannot_overwrite_a_newer_backup(
    bucket: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_old, db_new = tmp_path / "old.db", tmp_path / "new.db"
    make_db(db_old, 1)
    make_db(db_new, 1)
    stale = RegistryBackup(db_old, bucket, "clients.db", 300)
    stale.restore_if_missing()
    fresh = RegistryBackup(db_new, bucket, "clients.db", 300)
    fresh.restore_if_missing()
    make_db(db_new, 10)
    assert fresh.backup_now() is True
    make_db(db_old, 2)
    with caplog.at_level(logging.ERROR):
        assert stale.backup_now() is False
    assert "newer generation" in caplog.text
    restored = tmp_path / "check.db"
    RegistryBackup(restored, bucket, "clients.db", 300).restore_if_missing()
    assert count(restored) == 11


def test_stop_takes_a_final_backup(bucket: Any, tmp_path: Path) -> None:
    db = tmp_path / "clients.db"
    make_db(db, 3)
    backup = RegistryBackup(db, bucket, "clients.db", 3600)
    backup.restore_if_missing()
    backup.start()
    make_db(db, 4)
    backup.stop()
    assert bucket.get_blob("clients.db") is not None
    restored = tmp_path / "r.db"
    RegistryBackup(restored, bucket, "clients.db", 300).restore_if_missing()
    assert count(restored) == 7


def test_backups_are_skipped_for_postgres_and_without_a_bucket(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert (
            backup_from_settings(
                GatewaySettings(database_backup_bucket="b", database_url="postgresql+psycopg://x/y")
            )
            is None
        )
        assert backup_from_settings(GatewaySettings(database_url="sqlite:////tmp/x.db")) is None
    assert "not SQLite" in caplog.text and "DATABASE_BACKUP_BUCKET" in caplog.text
