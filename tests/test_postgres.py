"""The machine's PostgreSQL as the pg state backend (real Terraform, schema per client)
and as the registry (Alembic migrations, idempotent accept)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from flows.jobs import Job

PG = "postgresql://postgres@127.0.0.1:5432"


def _pg_up() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 5432)) == 0


@pytest.fixture(autouse=True)
def _postgres_answers() -> None:
    if not _pg_up():
        pytest.fail("PostgreSQL does not answer on 127.0.0.1:5432: the tests need it (.ci/run starts it)")


@pytest.fixture
def database() -> Iterator[str]:
    import psycopg

    name = f"tenantform_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_pg_state_backend_keeps_each_client_in_its_own_schema(
    settings: Any, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from flows.settings import Settings

    conn_str = f"{PG}/{database}?sslmode=disable"
    pg_settings = Settings(data_dir=settings.data_dir, state_backend="pg", state_pg_conn_str=conn_str)
    cid = str(uuid.uuid4())
    job = Job.create(
        pg_settings, cid, "local", {"cloud_provider": "local", "instance_name_prefix": "pg", "count": 1}
    )
    job.prepare()
    assert conn_str not in (job.workspace.path / "backend.tf.json").read_text()
    logged: list[str] = []
    tf = job.terraform(logged.append)
    tf.init()
    assert tf.apply().change_summary.add == 1  # type: ignore[union-attr]
    schema = "tf_" + cid.replace("-", "_")
    with psycopg.connect(conn_str) as conn:
        rows = conn.execute(f'SELECT name FROM "{schema}".states').fetchall()
    assert rows == [("default",)]
    assert not (settings.root / "state" / cid).exists()
    assert conn_str not in "\n".join(logged)
    assert conn_str not in (job.workspace.path / "init.log").read_text()
    assert job.workspace.path.stat().st_mode & 0o077 == 0  # .terraform/ keeps the backend config
    tf.destroy()


def test_registry_on_postgres(database: str) -> None:
    from api.clients.service import ClientService
    from api.registry.db import Registry

    registry = Registry(f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}")
    registry.migrate()
    registry.migrate()  # idempotent
    service = ClientService(registry)
    inputs = {"cloud_provider": "local", "instance_name_prefix": "pg", "count": 1}
    first = service.create_client(kind="instances", target="local", inputs=inputs, idempotency_key="k1")
    again = service.create_client(kind="instances", target="local", inputs=inputs, idempotency_key="k1")
    assert first.created and not again.created and first.run.id == again.run.id
    clients, total = service.list_clients()
    assert total == 1 and clients[0].id == first.client.id
    registry.dispose()


def test_labels_filter_on_postgres(database: str) -> None:
    """The label filter reads the JSON column: ->> on PostgreSQL, json_extract on SQLite."""
    from api.clients.filters import ClientFilter
    from api.clients.service import ClientService
    from api.registry.db import Registry

    registry = Registry(f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}")
    registry.migrate()
    service = ClientService(registry)
    inputs = {"cloud_provider": "local", "instance_name_prefix": "pg", "count": 1}
    canary = service.create_client(
        kind="instances", target="local", inputs=inputs, labels={"ring": "canary", "region": "eu"}
    )
    service.create_client(kind="instances", target="local", inputs=inputs, labels={"region": "eu"})
    service.create_client(kind="instances", target="local", inputs=inputs)

    def total(*labels: tuple[str, str | None]) -> int:
        return service.list_clients(filters=ClientFilter(labels=list(labels)))[1]

    assert total(("ring", "canary")) == 1 and total(("region", None)) == 2 and total(("region", "us")) == 0
    assert total(("ring", "canary"), ("region", "eu")) == 1
    assert (
        service.list_clients(filters=ClientFilter(labels=[("ring", "canary")]))[0][0].id == canary.client.id
    )
    assert canary.run.revision and canary.run.parameters["labels"] == {"ring": "canary", "region": "eu"}
    registry.dispose()
