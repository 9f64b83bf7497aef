"""The hospital flows in-process on a real Prefect server, real Terraform and localcloud:
provision a local-hospital, create its tables twice (the second run applies nothing),
destroy it. Results name versions and the secret, never the connection string."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

import pytest

from flows.clouds.local import read_local_secret
from tests.support import flow_params

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_provision_create_tables_twice_destroy(settings: Any) -> None:
    from flows.create_tables import create_tables
    from flows.provision import destroy, provision

    cid = str(uuid.uuid4())
    inputs = {
        "client_name": "Flow General",
        "client_uuid": cid,
        "environment": "dev",
        "region": "me-central2",
    }
    provisioned = provision(params=flow_params(cid, "local-hospital", inputs), return_state=True)
    assert provisioned.is_completed(), provisioned.message
    outputs = provisioned.result()["outputs"]
    url = read_local_secret(outputs["connection_secret"], settings)
    try:
        first = create_tables(params=flow_params(cid, "local-hospital", inputs), return_state=True)
        assert first.is_completed(), first.message
        assert first.result()["outputs"] == {"applied_versions": ["0001", "0002"]}
        again = create_tables(params=flow_params(cid, "local-hospital", inputs))
        assert again["outputs"] == {"applied_versions": []}
        assert again["operation"] == "create-tables"
        for body in (provisioned.result(), first.result(), again):
            assert url not in json.dumps(body)
        database = settings.root / "localcloud" / "sql-data" / outputs["sql_instance_id"] / "flow_general.db"
        with sqlite3.connect(database) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"patients", "staff", "appointments", "schema_migrations"} <= tables
    finally:
        gone = destroy(params=flow_params(cid, "local-hospital", inputs))
    assert (
        gone["change_summary"]["remove"] == 8
    )  # network, instance, database, password, user, 2 buckets, secret
