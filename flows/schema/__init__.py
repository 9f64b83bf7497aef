"""The hospital database's schema as versioned SQL files, applied in order and recorded
in ``schema_migrations`` so that applying twice changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import create_engine, text

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
    engine = create_engine(connection_url)
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
