"""localcloud's resources at their hooks, on a real data dir: what reaches SQL is checked,
buckets and SQL instances refuse to lose data, passwords and secrets stay private.
(The full lifecycle through Terraform is in test_localcloud_hospital.py.)"""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tf.utils import Diagnostics

from infrastructure.localcloud.resources import RESOURCES
from infrastructure.localcloud.resources.bucket import Bucket
from infrastructure.localcloud.resources.password import Password, generate
from infrastructure.localcloud.resources.secret import Secret, read_secret
from infrastructure.localcloud.resources.sql import SqlDatabase, SqlInstance, SqlUser, identifier
from infrastructure.localcloud.store import open_store


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LOCALCLOUD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LOCALCLOUD_MYSQL_ADMIN_URL", raising=False)
    yield tmp_path


def errors(resource: Any, config: dict[str, Any]) -> str:
    diags = Diagnostics()
    resource(None).validate(diags, resource.type_name, config)
    return str(diags) if diags.has_errors() else ""


def test_every_resource_is_registered() -> None:
    names = {r.get_name() for r in RESOURCES}
    assert {"network", "sql_instance", "sql_database", "sql_user", "bucket", "secret", "password"} <= names


@pytest.mark.parametrize(
    "name",
    ["", "1abc", "a-b", "a b", "x`; DROP DATABASE mysql; --", "x' OR '1'='1", "é", "a" * 65, "a\nb"],
)
def test_identifiers_that_reach_sql_are_letters_digits_underscore(name: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        identifier(name, "database name")


def test_bad_names_fail_at_plan_time() -> None:
    assert "invalid database name" in errors(SqlDatabase, {"name": "bad-name", "instance_id": "sql-1"})
    assert "invalid user name" in errors(
        SqlUser, {"name": "u_" + "x" * 40, "database": "db", "instance_id": "sql-1", "password": "p" * 8}
    )
    assert "invalid database_version" in errors(SqlInstance, {"name": "i", "database_version": "POSTGRES_15"})
    assert "invalid bucket name" in errors(Bucket, {"name": "../escape"})
    assert "invalid secret_id" in errors(Secret, {"secret_id": "a/b", "value": "v"})
    assert "invalid length" in errors(Password, {"length": 4})
    assert errors(SqlDatabase, {"name": "city_general_hospital", "instance_id": "sql-1"}) == ""


def test_passwords_use_the_base64_alphabet() -> None:
    plain = generate(64, special=False)
    assert len(plain) == 64 and set(plain) <= set(string.ascii_letters + string.digits)
    assert set("".join(generate(64, special=True) for _ in range(20))) <= set(
        string.ascii_letters + string.digits + "+/"
    )
    assert generate(16, special=True) != generate(16, special=True)


def test_a_non_empty_bucket_is_kept_unless_force_destroy(data_dir: Path) -> None:
    bucket = Bucket(None)
    state = {"id": "b-1", "name": "0f0e-private", "public": False, "force_destroy": False}
    state.update(bucket.on_create(state))
    path = data_dir / "bucket-data" / "0f0e-private"
    (path / "report.pdf").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        bucket.on_delete(state)
    assert path.is_dir()
    bucket.on_delete({**state, "force_destroy": True})
    assert not path.exists()


def test_an_sql_instance_holding_another_stacks_database_is_not_deleted(data_dir: Path) -> None:
    instance = {"id": "sql-0a0b0c0d0e0f", "name": "sql-parent", "database_version": "MYSQL_8_0"}
    instance.update(SqlInstance(None).on_create(instance))
    open_store(SqlInstance.kind).put(instance["id"], instance)
    database = {"id": "db-1", "instance_id": instance["id"], "name": "branch_a"}
    database.update(SqlDatabase(None).on_create(database))
    open_store(SqlDatabase.kind).put(database["id"], database)
    assert (Path(instance["data_path"]) / "branch_a.db").is_file()

    with pytest.raises(ValueError, match="still holds databases branch_a"):
        SqlInstance(None).on_delete(instance)
    SqlDatabase(None).on_delete(database)
    open_store(SqlDatabase.kind).delete(database["id"])
    SqlInstance(None).on_delete(instance)
    assert not Path(instance["data_path"]).exists()


def test_secrets_and_passwords_are_private_files(data_dir: Path) -> None:
    store = open_store(Secret.kind)
    store.put("s-1", {"id": "s-1", "value": "mysql+pymysql://u:pw@h/db"}, private=Secret.private)
    assert (data_dir / "secrets" / "s-1.json").stat().st_mode & 0o777 == 0o600
    assert (data_dir / "secrets").stat().st_mode & 0o777 == 0o700
    assert read_secret("localcloud/secrets/s-1") == "mysql+pymysql://u:pw@h/db"
    assert Password.private and SqlUser.private
    with pytest.raises(ValueError, match="not a localcloud secret"):
        read_secret("projects/p/secrets/s")
    with pytest.raises(ValueError, match="invalid object id"):
        read_secret("localcloud/secrets/../passwords/pw-1")
    with pytest.raises(KeyError) as missing:
        read_secret("localcloud/secrets/s-2")
    assert "pw" not in str(missing.value)


def test_api_latency_is_one_round_trip_per_read_and_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOCALCLOUD_API_LATENCY_SECONDS models a cloud API's round trip: one wait per
    create, read, update and delete (counted, not timed), none when unset."""
    from types import SimpleNamespace

    from infrastructure.localcloud import faults

    waits: list[float] = []
    monkeypatch.setattr(faults.time, "sleep", waits.append)
    ctx: Any = SimpleNamespace(diagnostics=Diagnostics())
    bucket = Bucket(None)
    planned = {"name": "lat1", "public": False, "force_destroy": True, "id": None, "url": None}
    assert bucket.create(ctx, dict(planned)) is not None
    assert waits == [], "off by default"
    monkeypatch.setenv("LOCALCLOUD_API_LATENCY_SECONDS", "0.2")
    state = bucket.create(ctx, {**planned, "name": "lat2"})
    assert state is not None, ctx.diagnostics
    bucket.read(ctx, state)
    bucket.update(ctx, state, state)
    bucket.delete(ctx, state)
    assert waits == [0.2, 0.2, 0.2, 0.2]
