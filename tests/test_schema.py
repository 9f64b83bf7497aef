"""The hospital schema (flows/schema) on the machine's MariaDB and on SQLite: applied in
order, recorded in schema_migrations, and a second run applies nothing."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from flows.schema import apply_schema, versions

MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306"
TABLES = {"patients", "staff", "appointments", "schema_migrations"}


def _mariadb_up() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 3306)) == 0


@pytest.fixture
def mariadb_database() -> Iterator[str]:
    """A fresh database on the machine's MariaDB, dropped afterwards."""
    if not _mariadb_up():
        pytest.fail("MariaDB does not answer on 127.0.0.1:3306: the tests need it (.ci/run starts it)")
    name = f"tf_schema_{uuid.uuid4().hex[:10]}"
    admin = create_engine(MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}`"))
    try:
        yield f"{MARIADB_ADMIN}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def check_twice(url: str) -> None:
    every = [v for v, _ in versions()]
    assert every[:2] == ["0001", "0002"]
    assert apply_schema(url) == every
    assert apply_schema(url) == []
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            recorded = [r[0] for r in conn.execute(text("SELECT version FROM schema_migrations ORDER BY 1"))]
        assert recorded == every
    finally:
        engine.dispose()


def test_apply_schema_twice_on_sqlite(tmp_path: Path) -> None:
    check_twice(f"sqlite:///{tmp_path / 'hospital.db'}")


def test_apply_schema_twice_on_mariadb(mariadb_database: str) -> None:
    check_twice(mariadb_database)


def test_a_bad_url_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError) as refused:
        apply_schema("not a url with p4ssw0rd-inside")
    assert "p4ssw0rd" not in str(refused.value)


def test_version_files_are_numbered_and_unique() -> None:
    numbers = [v for v, _ in versions()]
    assert numbers == sorted(set(numbers))
    assert all(p.name.startswith(f"{v}_") for v, p in versions())
