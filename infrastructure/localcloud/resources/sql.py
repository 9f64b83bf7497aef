"""SQL instances that are real databases: SQLite files by default, or databases and users
on a MySQL/MariaDB server when ``LOCALCLOUD_MYSQL_ADMIN_URL`` names one
(e.g. ``mysql+pymysql://root@127.0.0.1:3306``)."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tf.schema import Attribute, Schema
from tf.types import Map, String

from infrastructure.localcloud.resources.base import State, StoredResource
from infrastructure.localcloud.store import Store, data_dir

ADMIN_URL_ENV = "LOCALCLOUD_MYSQL_ADMIN_URL"
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def identifier(value: str, what: str) -> str:
    """Names reach SQL as identifiers; anything but letters, digits and '_' is refused."""
    if not _IDENT.match(value):
        raise ValueError(f"invalid {what} {value!r}: letters, digits and '_' only, at most 64")
    return value


def _instance(instance_id: str) -> dict[str, Any]:
    found = Store(SqlInstance.kind).get(instance_id)
    if found is None:
        raise ValueError(f"sql instance {instance_id} does not exist")
    return found


def _admin(instance: dict[str, Any]) -> Any:
    admin_url = os.environ.get(ADMIN_URL_ENV)
    if not admin_url:
        raise ValueError(f"sql instance {instance['name']} is on MySQL but {ADMIN_URL_ENV} is not set")
    return create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _sqlite_file(instance: dict[str, Any], database: str) -> Path:
    return Path(instance["data_path"]) / f"{database}.db"


class SqlInstance(StoredResource):
    type_name = "sql_instance"
    kind = "sql_instances"
    id_prefix = "sql"
    schema = Schema(
        version=1,
        attributes=[
            Attribute("id", String(), computed=True, description="Instance id."),
            Attribute("name", String(), required=True, requires_replace=True, description="Instance name."),
            Attribute(
                "database_version",
                String(),
                required=True,
                requires_replace=True,
                description="e.g. MYSQL_8_0.",
            ),
            Attribute("network_id", String(), optional=True, description="Private network it lives on."),
            Attribute("labels", Map(String()), optional=True, description="Free-form labels."),
            Attribute("engine", String(), computed=True, description="sqlite or mysql."),
            Attribute("host", String(), computed=True, description="Server host (mysql)."),
            Attribute("port", String(), computed=True, description="Server port (mysql)."),
            Attribute("private_ip", String(), computed=True, description="Address on the private network."),
            Attribute("data_path", String(), computed=True, description="Directory of SQLite files."),
        ],
    )

    def on_create(self, state: State) -> State:
        admin_url = os.environ.get(ADMIN_URL_ENV)
        private_ip = "10.10.0." + str(int(state["id"].split("-")[1][:2], 16) % 250 + 2)
        if admin_url:
            url = make_url(admin_url)
            return {
                "engine": "mysql",
                "host": url.host or "127.0.0.1",
                "port": str(url.port or 3306),
                "private_ip": private_ip,
                "data_path": "",
            }
        path = data_dir() / "sql-data" / state["id"]
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return {"engine": "sqlite", "host": "", "port": "", "private_ip": private_ip, "data_path": str(path)}


class SqlDatabase(StoredResource):
    type_name = "sql_database"
    kind = "sql_databases"
    id_prefix = "db"
    schema = Schema(
        version=1,
        attributes=[
            Attribute("id", String(), computed=True, description="Database id."),
            Attribute(
                "instance_id", String(), required=True, requires_replace=True, description="Its instance."
            ),
            Attribute("name", String(), required=True, requires_replace=True, description="Database name."),
        ],
    )

    def on_create(self, state: State) -> State:
        name = identifier(state["name"], "database name")
        instance = _instance(state["instance_id"])
        if instance["engine"] == "mysql":
            with _admin(instance).connect() as conn:
                conn.execute(text(f"CREATE DATABASE `{name}`"))
        else:
            sqlite3.connect(_sqlite_file(instance, name)).close()
        return {}

    def on_delete(self, current: State) -> None:
        name = identifier(current["name"], "database name")
        instance = Store(SqlInstance.kind).get(current["instance_id"])
        if instance is None:
            return
        if instance["engine"] == "mysql":
            with _admin(instance).connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        else:
            _sqlite_file(instance, name).unlink(missing_ok=True)


class SqlUser(StoredResource):
    type_name = "sql_user"
    kind = "sql_users"
    id_prefix = "u"
    private = True
    schema = Schema(
        version=1,
        attributes=[
            Attribute("id", String(), computed=True, description="User id."),
            Attribute(
                "instance_id", String(), required=True, requires_replace=True, description="Its instance."
            ),
            Attribute(
                "database", String(), required=True, requires_replace=True, description="Database it may use."
            ),
            Attribute("name", String(), required=True, requires_replace=True, description="User name."),
            Attribute("password", String(), required=True, sensitive=True, description="Its password."),
            Attribute(
                "connection_string",
                String(),
                computed=True,
                sensitive=True,
                description="SQLAlchemy URL for this user and database.",
            ),
        ],
    )

    def _url(self, instance: dict[str, Any], state: State) -> str:
        if instance["engine"] == "mysql":
            user, password = quote(state["name"], safe=""), quote(state["password"], safe="")
            return (
                f"mysql+pymysql://{user}:{password}@{instance['host']}:{instance['port']}/{state['database']}"
            )
        return f"sqlite:///{_sqlite_file(instance, state['database'])}"

    def on_create(self, state: State) -> State:
        name = identifier(state["name"], "user name")
        database = identifier(state["database"], "database name")
        instance = _instance(state["instance_id"])
        if instance["engine"] == "mysql":
            with _admin(instance).connect() as conn:
                conn.execute(text(f"CREATE USER '{name}'@'%' IDENTIFIED BY :pw"), {"pw": state["password"]})
                conn.execute(text(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{name}'@'%'"))
        return {"connection_string": self._url(instance, state)}

    def on_update(self, current: State, planned: State) -> State:
        instance = _instance(planned["instance_id"])
        if instance["engine"] == "mysql" and current.get("password") != planned["password"]:
            name = identifier(planned["name"], "user name")
            with _admin(instance).connect() as conn:
                conn.execute(text(f"ALTER USER '{name}'@'%' IDENTIFIED BY :pw"), {"pw": planned["password"]})
        return {"connection_string": self._url(instance, planned)}

    def on_delete(self, current: State) -> None:
        instance = Store(SqlInstance.kind).get(current["instance_id"])
        if instance is not None and instance["engine"] == "mysql":
            name = identifier(current["name"], "user name")
            with _admin(instance).connect() as conn:
                conn.execute(text(f"DROP USER IF EXISTS '{name}'@'%'"))
