"""Terraform 1.0.3's pg state backend locks a workspace that has no row yet with one
database-wide advisory lock (-1), held for the whole plan or apply: a burst of new clients
ran one at a time across every worker (issue 25's bench). ``init`` now gives the
workspace its row (a valid empty state), so each run takes its own row's lock: one
client's run does not hold up another's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flows.jobs import Job
from tests.test_postgres import PG, database  # noqa: F401  (the fixture)

INPUTS = {"cloud_provider": "local", "instance_name_prefix": "pglock", "count": 1}


def _job(settings: Any, conn_str: str) -> Job:
    from flows.settings import Settings

    pg = Settings(
        data_dir=settings.data_dir, state_backend="pg", state_pg_conn_str=conn_str, lock_timeout="3s"
    )
    job = Job.create(pg, str(uuid.uuid4()), "local", INPUTS)
    job.prepare()
    return job


def test_init_gives_the_workspace_its_row_so_runs_lock_only_their_own(
    settings: Any,
    database: str,  # noqa: F811
) -> None:
    import psycopg

    conn_str = f"{PG}/{database}?sslmode=disable"
    first, second = _job(settings, conn_str), _job(settings, conn_str)
    tf_first, tf_second = first.terraform(), second.terraform()
    tf_first.init()
    tf_second.init()
    schema = "tf_" + first.client_id.replace("-", "_")
    with psycopg.connect(conn_str, autocommit=True) as held:
        (row_id, data) = held.execute(f'SELECT id, data FROM "{schema}".states').fetchone()  # type: ignore[misc]
        assert '"serial": 0' in data
        # The first client's run in progress: it holds its row's lock. The second's plan
        # and apply (a lock timeout of 3 s) go ahead; before, a new workspace's run held
        # the creation lock every other workspace's lock needs.
        assert held.execute("SELECT pg_try_advisory_lock(%s)", [row_id]).fetchone() == (True,)
        assert held.execute("SELECT pg_try_advisory_lock(-1)", []).fetchone() == (True,)
        held.execute("SELECT pg_advisory_unlock(-1)")
        assert tf_second.apply().change_summary.add == 1  # type: ignore[union-attr]
        with pytest.raises(Exception, match="lock"):
            tf_first.plan()
    assert tf_first.apply().change_summary.add == 1  # type: ignore[union-attr]
    tf_first.destroy()
    tf_second.destroy()
