"""The hospital database's schema as versioned SQL files (``NNNN_name.sql``), applied in
order and recorded in ``schema_migrations`` so that applying twice changes nothing.

Each version runs in one transaction; on MySQL/MariaDB DDL commits on its own, so keep a
version to statements that are safe to re-run by hand if one ever fails half-way.
The connection URL holds a password: it never reaches a log or an exception message.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

SCHEMA_DIR = Path(__file__).parent
_VERSION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def versions() -> list[tuple[str, Path]]:
    found = sorted((m.group(1), p) for p in SCHEMA_DIR.glob("*.sql") if (m := _VERSION.match(p.name)))
    return found


def _statements(sql: str, dialect: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    if dialect == "sqlite":  # SQLite spells it AUTOINCREMENT and only after PRIMARY KEY
        body = body.replace("PRIMARY KEY AUTO_INCREMENT", "PRIMARY KEY AUTOINCREMENT")
    return [s.strip() for s in body.split(";") if s.strip()]


def apply_schema(connection_url: str) -> list[str]:
    """Apply the versions not yet recorded; returns those applied now (none on a rerun)."""
    try:
        engine = create_engine(connection_url, hide_parameters=True)
    except (ArgumentError, NoSuchModuleError):  # their messages quote the URL, password and all
        raise ValueError("the connection string is not a database URL SQLAlchemy can use") from None
    applied_now: list[str] = []
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version VARCHAR(16) PRIMARY KEY,"
                    " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
                )
            )
            done = {row[0] for row in conn.execute(text("SELECT version FROM schema_migrations"))}
        for version, path in versions():
            if version in done:
                continue
            with engine.begin() as conn:
                for statement in _statements(path.read_text(), engine.dialect.name):
                    conn.execute(text(statement))
                conn.execute(text("INSERT INTO schema_migrations (version) VALUES (:v)"), {"v": version})
            applied_now.append(version)
    finally:
        engine.dispose()
    return applied_now
