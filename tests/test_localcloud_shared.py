"""localcloud as one cloud for many workers: objects in the machine's PostgreSQL
(``LOCALCLOUD_DATABASE_URL``), state in the pg backend. A stack built from one data dir
(one worker) is destroyed from another, and nothing is left behind."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from flows.jobs import Job
from flows.settings import Settings
from tests.test_postgres import PG, database  # noqa: F401 - the fixture

REQUEST = {"cloud_provider": "local", "instance_name_prefix": "shared", "count": 2}


def _job(data_dir: Path, conn_str: str, client_id: str, target: str, inputs: dict[str, Any]) -> Job:
    settings = Settings(data_dir=data_dir, state_backend="pg", state_pg_conn_str=conn_str)
    job = Job.create(settings, client_id, target, inputs)
    job.prepare()
    return job


def test_a_stack_built_on_one_worker_is_destroyed_from_another(
    tmp_path: Path,
    database: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg

    conn_str = f"{PG}/{database}?sslmode=disable"
    monkeypatch.setenv("LOCALCLOUD_DATABASE_URL", conn_str)
    cid = str(uuid.uuid4())

    built = _job(tmp_path / "worker-a", conn_str, cid, "local", REQUEST).terraform()
    built.init()
    assert built.apply().change_summary.add == 2  # type: ignore[union-attr]
    with psycopg.connect(conn_str) as conn:
        kinds = conn.execute("SELECT kind, count(*) FROM localcloud.objects GROUP BY kind").fetchall()
    assert kinds == [("instances", 2)]
    assert not (tmp_path / "worker-a" / "localcloud" / "instances").exists(), "nothing on worker A's disk"

    other = _job(tmp_path / "worker-b", conn_str, cid, "local", REQUEST).terraform()
    other.init()
    planned = other.plan()
    assert planned.exit_code == 0 and planned.drift == [], "worker B sees the stack worker A built"
    gone = other.destroy()
    assert gone.change_summary.remove == 2 and gone.drift == []  # type: ignore[union-attr]
    with psycopg.connect(conn_str) as conn:
        assert conn.execute("SELECT count(*) FROM localcloud.objects").fetchone() == (0,)


def test_a_shared_localcloud_refuses_sql_instances_on_one_workers_disk(
    tmp_path: Path,
    database: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.terraform.errors import TerraformError

    conn_str = f"{PG}/{database}?sslmode=disable"
    monkeypatch.setenv("LOCALCLOUD_DATABASE_URL", conn_str)
    monkeypatch.delenv("LOCALCLOUD_MYSQL_ADMIN_URL", raising=False)
    cid = str(uuid.uuid4())
    hospital = {
        "client_name": "Shared General",
        "client_uuid": cid,
        "environment": "dev",
        "region": "me-central2",
    }
    tf = _job(tmp_path / "worker-a", conn_str, cid, "local-hospital", hospital).terraform()
    tf.init()
    with pytest.raises(TerraformError, match="LOCALCLOUD_MYSQL_ADMIN_URL"):
        tf.apply()
    tf.destroy()
