"""Backups of a SQLite registry to GCS, as the hospital document describes: a snapshot
every interval, a restore at start-up when the file is missing, a final one at shutdown.

Uploads carry ``if_generation_match`` with the generation this instance last saw, so a
stale instance can never overwrite a newer backup: the precondition fails and we say so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any

from api.registry.db import sqlite_path
from flows.clouds.gcp import storage_client
from flows.settings import Settings

log = logging.getLogger(__name__)


class RegistryBackup:
    def __init__(self, db_path: Path, bucket: Any, object_name: str, interval: float) -> None:
        self.db_path = db_path
        self.bucket = bucket
        self.object_name = object_name
        self.interval = interval
        self.generation: int | None = None
        self._last_digest: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _remote_generation(self) -> int:
        blob = self.bucket.get_blob(self.object_name)
        return int(blob.generation) if blob is not None else 0

    def restore_if_missing(self) -> bool:
        """Download the latest backup when the local file is missing; True if restored."""
        blob = self.bucket.get_blob(self.object_name)
        self.generation = int(blob.generation) if blob is not None else 0
        if self.db_path.exists() or blob is None:
            if blob is None:
                log.info("no registry backup in gs://%s/%s yet", self.bucket.name, self.object_name)
            return False
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.db_path.with_suffix(".restore")
        blob.download_to_filename(str(tmp))
        os.replace(tmp, self.db_path)
        self._last_digest = hashlib.sha256(self.db_path.read_bytes()).hexdigest()
        log.info(
            "registry restored from gs://%s/%s (generation %s)",
            self.bucket.name,
            self.object_name,
            self.generation,
        )
        return True

    def snapshot(self) -> bytes:
        """A consistent copy through SQLite's backup API, even while others write."""
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "snapshot.db"
            source = sqlite3.connect(self.db_path)
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
            return copy.read_bytes()

    def backup_now(self) -> bool:
        """Upload a snapshot if it changed; False when unchanged or refused."""
        from google.api_core.exceptions import PreconditionFailed

        if not self.db_path.exists():
            return False
        data = self.snapshot()
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._last_digest:
            return False
        if self.generation is None:
            self.generation = self._remote_generation()
        blob = self.bucket.blob(self.object_name)
        try:
            blob.upload_from_string(
                data, content_type="application/vnd.sqlite3", if_generation_match=self.generation
            )
        except PreconditionFailed:
            log.error(
                "registry backup refused: gs://%s/%s has a newer generation than %s (another instance "
                "wrote it); not overwriting",
                self.bucket.name,
                self.object_name,
                self.generation,
            )
            return False
        self.generation = int(blob.generation)
        self._last_digest = digest
        log.info(
            "registry backed up to gs://%s/%s (generation %s)",
            self.bucket.name,
            self.object_name,
            self.generation,
        )
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.backup_now()
            except Exception:
                log.exception("registry backup failed; will try again")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="registry-backup", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and take the final backup."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.backup_now()
        except Exception:
            log.exception("final registry backup failed")


def backup_from_settings(settings: Settings) -> RegistryBackup | None:
    path = sqlite_path(settings.registry_url)
    if path is None:
        log.info("registry is not SQLite: backups to GCS are skipped (use the database's own backups)")
        return None
    if not settings.database_backup_bucket:
        log.info("DATABASE_BACKUP_BUCKET is not set: registry backups are off")
        return None
    bucket = storage_client(settings).bucket(settings.database_backup_bucket)
    return RegistryBackup(
        path, bucket, settings.database_backup_object, settings.database_backup_interval_seconds
    )
