"""Where localcloud keeps its objects, grouped by kind: JSON files under the data dir (one
machine), or, with ``LOCALCLOUD_DATABASE_URL``, rows in a PostgreSQL database every worker
reaches, so the embedded cloud is one cloud whichever machine talks to it (as a real
cloud's API is reachable from anywhere)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, ClassVar

DATA_DIR_ENV = "LOCALCLOUD_DATA_DIR"
DATABASE_URL_ENV = "LOCALCLOUD_DATABASE_URL"


def shared_url() -> str | None:
    """The PostgreSQL URL of a shared localcloud, or None for files on this machine."""
    return os.environ.get(DATABASE_URL_ENV) or None


def data_dir() -> Path:
    """The provider's root; required so objects never land in a surprising place."""
    raw = os.environ.get(DATA_DIR_ENV)
    if not raw:
        raise RuntimeError(f"{DATA_DIR_ENV} is not set: localcloud does not know where to keep objects")
    return Path(raw)


def open_store(kind: str, root: Path | None = None) -> FileStore | PgStore:
    """Objects of one kind, in the shared database when there is one."""
    url = shared_url()
    return PgStore(kind, url) if url else FileStore(kind, root)


class PgStore:
    """Objects of one kind as rows of ``localcloud.objects``; each call is one statement."""

    _ready: ClassVar[set[str]] = set()

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        if self.url not in PgStore._ready:
            with conn.transaction():  # one creator at a time, however many providers start
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('localcloud.objects'))")
                conn.execute("CREATE SCHEMA IF NOT EXISTS localcloud")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS localcloud.objects ("
                    " kind text NOT NULL, id text NOT NULL, value jsonb NOT NULL, PRIMARY KEY (kind, id))"
                )
            PgStore._ready.add(self.url)
        return conn

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{secrets.token_hex(6)}"

    def get(self, object_id: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT value FROM localcloud.objects WHERE kind = %s AND id = %s", (self.kind, object_id)
            ).fetchone()
        return None if row is None else dict(row[0])

    def put(self, object_id: str, value: dict[str, Any], *, private: bool = False) -> None:
        from psycopg.types.json import Jsonb

        with self._connect() as conn:
            conn.execute(
                "INSERT INTO localcloud.objects (kind, id, value) VALUES (%s, %s, %s)"
                " ON CONFLICT (kind, id) DO UPDATE SET value = EXCLUDED.value",
                (self.kind, object_id, Jsonb(value)),
            )

    def delete(self, object_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM localcloud.objects WHERE kind = %s AND id = %s", (self.kind, object_id))

    def all(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT value FROM localcloud.objects WHERE kind = %s ORDER BY id", (self.kind,)
            ).fetchall()
        return [dict(r[0]) for r in rows]


class FileStore:
    """Objects of one kind as files; writes are atomic (temp file + rename)."""

    def __init__(self, kind: str, root: Path | None = None) -> None:
        self.dir = (root or data_dir()) / kind
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{secrets.token_hex(6)}"

    def path(self, object_id: str) -> Path:
        if "/" in object_id or object_id.startswith("."):
            raise ValueError(f"invalid object id {object_id!r}")
        return self.dir / f"{object_id}.json"

    def get(self, object_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(object_id).read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def put(self, object_id: str, value: dict[str, Any], *, private: bool = False) -> None:
        target = self.path(object_id)
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(value, fh, indent=2, sort_keys=True)
        os.replace(tmp, target)

    def delete(self, object_id: str) -> None:
        self.path(object_id).unlink(missing_ok=True)

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("*.json"))]


ObjectStore = FileStore | PgStore
