"""local-hospital and local-sub-hospital through real Terraform 1.0.3 and the localcloud
provider, driven by ``Job`` (no Prefect): a hospital, a sub-hospital that finds it through
``terraform_remote_state``, their real databases (SQLite files, or the machine's MariaDB
when ``LOCALCLOUD_MYSQL_ADMIN_URL`` is set), no secret in outputs, files or logs, drift,
and a destroy that leaves nothing behind."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from flows.clouds.hospital import HospitalOutputs
from flows.clouds.local import read_local_secret
from flows.jobs import Job
from flows.schema import apply_schema
from flows.settings import Settings
from flows.terraform.runner import Terraform

MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306"


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(params=["sqlite", "mariadb"])
def sql_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which server backs localcloud's SQL instances in this test."""
    if request.param == "mariadb":
        if not _answers(3306):
            pytest.fail("MariaDB does not answer on 127.0.0.1:3306: the tests need it (.ci/run starts it)")
        monkeypatch.setenv("LOCALCLOUD_MYSQL_ADMIN_URL", MARIADB_ADMIN)
    yield request.param


def hospital(cid: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"client_name": name, "client_uuid": cid, "environment": "dev", "region": "me-central2", **extra}


def provision(settings: Settings, cid: str, target: str, inputs: dict[str, Any]) -> tuple[Job, Terraform]:
    job = Job.create(settings, cid, target, inputs)
    job.prepare()
    logged: list[str] = []
    tf = job.terraform(logged.append)
    tf.init()
    tf.apply()
    (job.workspace.path / "captured.log").write_text("\n".join(logged))  # what the run logger saw
    return job, tf


def public_outputs(tf: Terraform) -> dict[str, Any]:
    outputs = tf.output()
    assert not [k for k, v in outputs.items() if v.sensitive]
    values = {k: v.value for k, v in outputs.items()}
    HospitalOutputs.model_validate(values)
    return values


def assert_never_written(job: Job, outputs: dict[str, Any], *secrets: str) -> None:
    texts = {
        "outputs": json.dumps(outputs),
        "apply.log": (job.workspace.path / "apply.log").read_text(),
        "logged lines": (job.workspace.path / "captured.log").read_text(),
        "terraform.tfvars.json": (job.workspace.path / "terraform.tfvars.json").read_text(),
    }
    for secret in secrets:
        for where, body in texts.items():
            assert secret not in body, f"a secret leaked into {where}"


def stored_password(settings: Settings, user: str) -> str:
    """The user's password as localcloud keeps it (a 0600 object only the provider reads)."""
    for path in (settings.root / "localcloud" / "sql_users").glob("*.json"):
        found = json.loads(path.read_text())
        if found["name"] == user:
            assert path.stat().st_mode & 0o777 == 0o600
            return str(found["password"])
    raise AssertionError(f"no sql user {user}")


def localcloud_leftovers(settings: Settings) -> list[Path]:
    root = settings.root / "localcloud"
    return [p for p in root.rglob("*") if p.is_file() and "_faults" not in p.parts]


def mysql_names() -> tuple[set[str], set[str]]:
    admin = create_engine(MARIADB_ADMIN)
    try:
        with admin.connect() as conn:
            databases = {r[0] for r in conn.execute(text("SHOW DATABASES"))}
            users = {r[0] for r in conn.execute(text("SELECT User FROM mysql.user"))}
    finally:
        admin.dispose()
    return databases, users


def drop_mysql_leftovers(settings: Settings) -> None:
    """Teardown after a failed test: what localcloud recorded, dropped by hand."""
    root = settings.root / "localcloud"
    admin = create_engine(MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for path in root.glob("sql_databases/*.json"):
                server_name = json.loads(path.read_text()).get("server_name")
                if server_name:
                    conn.execute(text(f"DROP DATABASE IF EXISTS `{server_name}`"))
            for path in root.glob("sql_users/*.json"):
                conn.execute(text(f"DROP USER IF EXISTS '{json.loads(path.read_text())['name']}'@'%'"))
    finally:
        admin.dispose()


def test_hospital_then_sub_hospital_then_destroy_leaves_nothing(settings: Settings, sql_engine: str) -> None:
    parent_id, child_id = str(uuid.uuid4()), str(uuid.uuid4())
    tag = uuid.uuid4().hex[:6]
    parent_name, child_name = f"City General {tag}", f"City General {tag} - Branch A"
    stacks: list[Terraform] = []
    try:
        parent_job, parent_tf = provision(
            settings, parent_id, "local-hospital", hospital(parent_id, parent_name)
        )
        stacks.append(parent_tf)
        parent = public_outputs(parent_tf)
        assert parent["database_name"] == f"city_general_{tag}"
        for name in ("sql_instance_name", "private_bucket", "public_bucket", "network_name"):
            assert parent_id in parent[name], name  # every name but the database's from the UUID
        parent_url = read_local_secret(parent["connection_secret"], settings)
        password = stored_password(settings, parent["database_user"])
        assert len(password) == settings.password_length
        if sql_engine == "mariadb":
            assert make_url(parent_url).password == password
        assert_never_written(parent_job, parent, parent_url, password)

        child_job, child_tf = provision(
            settings,
            child_id,
            "local-sub-hospital",
            hospital(child_id, child_name, parent_uuid=parent_id, parent_target="local-hospital"),
        )
        stacks.append(child_tf)
        child = public_outputs(child_tf)
        assert child["sql_instance_id"] == parent["sql_instance_id"]  # found through remote state
        assert child["private_bucket"] == parent["private_bucket"]
        assert child["database_name"] == f"city_general_{tag}_branch_a"
        assert child["connection_secret"] != parent["connection_secret"]
        child_url = read_local_secret(child["connection_secret"], settings)
        assert_never_written(child_job, child, child_url, stored_password(settings, child["database_user"]))

        # The sub-hospital's database is real: its own user can build the schema in it.
        assert apply_schema(child_url) == ["0001", "0002"]
        if sql_engine == "mariadb":
            databases, users = mysql_names()
            assert make_url(child_url).database in databases
            assert child["database_user"] in users
            # ... and its user has no rights on the parent's database.
            foreign = create_engine(make_url(child_url).set(database=make_url(parent_url).database))
            with pytest.raises(OperationalError, match="denied"), foreign.connect():
                pass
            foreign.dispose()
        else:
            assert Path(make_url(child_url).database or "").is_file()

        child_tf.destroy()
        stacks.remove(child_tf)
        parent_tf.destroy()
        stacks.remove(parent_tf)
    finally:
        for tf in reversed(stacks):
            tf.destroy()
        if sql_engine == "mariadb":
            drop_mysql_leftovers(settings)

    assert localcloud_leftovers(settings) == []
    assert list((settings.root / "localcloud").glob("sql-data/*")) == []
    assert list((settings.root / "localcloud").glob("bucket-data/*")) == []
    if sql_engine == "mariadb":
        databases, users = mysql_names()
        assert not {make_url(parent_url).database, make_url(child_url).database} & databases
        assert not {parent["database_user"], child["database_user"]} & users


def test_out_of_band_deletions_show_as_drift_and_apply_repairs_them(settings: Settings) -> None:
    cid = str(uuid.uuid4())
    _, tf = provision(settings, cid, "local-hospital", hospital(cid, "Drift Clinic"))
    try:
        outputs = public_outputs(tf)
        store = settings.root / "localcloud"
        secret_file = store / "secrets" / f"{outputs['connection_secret'].rsplit('/', 1)[1]}.json"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        assert tf.plan().exit_code == 0

        secret_file.unlink()
        (store / "sql-data" / outputs["sql_instance_id"] / "drift_clinic.db").unlink()
        drifted = tf.plan()
        assert drifted.exit_code == 2
        assert "localcloud_secret.connection" in drifted.drift
        assert "localcloud_sql_database.main" in drifted.drift

        tf.apply()
        assert tf.plan().exit_code == 0
        repaired = public_outputs(tf)
        assert read_local_secret(repaired["connection_secret"], settings).startswith("sqlite:///")
    finally:
        tf.destroy()
    assert localcloud_leftovers(settings) == []


def test_sub_hospital_reads_a_parent_kept_in_postgres_without_writing_its_url(settings: Settings) -> None:
    """With STATE_BACKEND=pg the parent's state URL holds a password: the sub-hospital's
    remote state gets it through TF_VAR_parent_backend_secrets, never a file."""
    import psycopg

    server = "postgresql://postgres@127.0.0.1:5432"
    database = f"tenantform_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    conn_str = f"{server}/{database}?sslmode=disable"
    pg = Settings(data_dir=settings.data_dir, state_backend="pg", state_pg_conn_str=conn_str)
    parent_id, child_id = str(uuid.uuid4()), str(uuid.uuid4())
    stacks: list[Terraform] = []
    try:
        _, parent_tf = provision(pg, parent_id, "local-hospital", hospital(parent_id, "Postgres General"))
        stacks.append(parent_tf)
        child_job, child_tf = provision(
            pg,
            child_id,
            "local-sub-hospital",
            hospital(child_id, "Postgres Branch", parent_uuid=parent_id, parent_target="local-hospital"),
        )
        stacks.append(child_tf)
        assert public_outputs(child_tf)["sql_instance_id"] == public_outputs(parent_tf)["sql_instance_id"]
        for path in child_job.workspace.path.glob("*"):
            if path.is_file():
                assert conn_str not in path.read_text(errors="replace"), path.name
    finally:
        for tf in reversed(stacks):
            tf.destroy()
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
