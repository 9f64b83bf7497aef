"""create-tables' parts against real services: the connection string from Secret Manager
(drongo emulator) and from the local store; the schema on the machine's MariaDB, with a
local-hospital whose SQL instance is backed by MariaDB (real Terraform + localcloud)."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from flows.jobs import Job
from flows.schema import apply_schema
from flows.secrets import read_gcp_secret, read_local_secret
from flows.settings import Settings
from tests.emulators.drongo import drongo_url

__all__ = ["drongo_url"]

MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306"


def _mariadb_up() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 3306)) == 0


needs_mariadb = pytest.mark.skipif(not _mariadb_up(), reason="MariaDB does not answer on 127.0.0.1:3306")


def test_read_gcp_secret_from_secret_manager_emulator(drongo_url: str) -> None:
    from google.api_core import exceptions

    from flows.secrets import secret_manager_client

    settings = Settings(secret_manager_endpoint=drongo_url)
    client = secret_manager_client(settings)
    secret_id = f"mysql-connection-{uuid.uuid4()}"
    try:
        secret = client.create_secret(
            parent="projects/test-project",
            secret_id=secret_id,
            secret={"replication": {"automatic": {}}},
        )
    except exceptions.GoogleAPICallError as exc:  # drongo answers 409 where GCP differs
        pytest.fail(f"drongo refused the secret: {exc}")
    client.add_secret_version(parent=secret.name, payload={"data": b"mysql+pymysql://u:p@10.0.0.3:3306/db"})
    assert read_gcp_secret(secret.name, settings) == "mysql+pymysql://u:p@10.0.0.3:3306/db"


def test_apply_schema_twice_on_sqlite(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert apply_schema(url) == ["0001", "0002"]
    assert apply_schema(url) == []


@needs_mariadb
def test_apply_schema_twice_on_mariadb() -> None:
    name = f"tf_schema_{uuid.uuid4().hex[:10]}"
    admin = create_engine(MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}`"))
    try:
        url = f"{MARIADB_ADMIN}/{name}"
        assert apply_schema(url) == ["0001", "0002"]
        assert apply_schema(url) == []
        with admin.connect() as conn:
            tables = {r[0] for r in conn.execute(text(f"SHOW TABLES FROM `{name}`"))}
        assert {"patients", "staff", "appointments", "schema_migrations"} <= tables
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@needs_mariadb
def test_local_hospital_on_mariadb_end_to_end(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL instance is a real MariaDB database and user; the secret holds a working
    connection string; destroy drops both."""
    monkeypatch.setenv("LOCALCLOUD_MYSQL_ADMIN_URL", MARIADB_ADMIN)
    cid = str(uuid.uuid4())
    hospital_name = f"Maria General {uuid.uuid4().hex[:6]}"
    job = Job.create(
        settings,
        cid,
        "local-hospital",
        {
            "client_name": hospital_name,
            "client_uuid": cid,
            "environment": "dev",
            "region": "me-central2",
        },
    )
    job.prepare()
    logged: list[str] = []
    tf = job.terraform(logged.append)
    tf.init()
    tf.apply()
    outputs = {k: v.value for k, v in tf.output().items()}
    url = read_local_secret(outputs["connection_secret"], settings)
    try:
        assert url.startswith("mysql+pymysql://u_") and outputs["database_name"] in url
        assert url not in "\n".join(logged) and url not in (job.workspace.path / "apply.log").read_text()
        password = url.split(":")[2].split("@")[0]
        assert password not in (job.workspace.path / "apply.log").read_text()
        assert apply_schema(url) == ["0001", "0002"]
        assert apply_schema(url) == []
        user_engine = create_engine(url)
        with user_engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM patients")).scalar() == 0
        user_engine.dispose()
    finally:
        tf.destroy()
    admin = create_engine(MARIADB_ADMIN)
    with admin.connect() as conn:
        dbs = {r[0] for r in conn.execute(text("SHOW DATABASES"))}
        users = {r[0] for r in conn.execute(text("SELECT User FROM mysql.user"))}
    admin.dispose()
    assert outputs["database_name"] not in dbs
    assert outputs["database_user"] not in users


def test_secret_deleted_out_of_band_is_drift(settings: Any) -> None:
    cid = str(uuid.uuid4())
    job = Job.create(
        settings,
        cid,
        "local-hospital",
        {
            "client_name": "Drift Clinic",
            "client_uuid": cid,
            "environment": "dev",
            "region": "me-central2",
        },
    )
    job.prepare()
    tf = job.terraform()
    tf.init()
    tf.apply()
    reference = tf.output()["connection_secret"].value
    secret_file = settings.root / "localcloud" / "secrets" / f"{reference.rsplit('/', 1)[1]}.json"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert tf.plan().exit_code == 0
    secret_file.unlink()
    drifted = tf.plan()
    assert drifted.exit_code == 2 and any("localcloud_secret" in d for d in drifted.drift)
    tf.destroy()
