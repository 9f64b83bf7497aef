"""SQL instances that are real databases: SQLite files by default, or databases and users
on a MySQL/MariaDB server when ``LOCALCLOUD_MYSQL_ADMIN_URL`` names one
(e.g. ``mysql+pymysql://root@127.0.0.1:3306``).

On MySQL many localcloud instances share one server, the way many Cloud SQL instances
share nothing: a database's name on the server (``server_name``) carries its instance's
id so that two hospitals of the same name never collide. Users are named per client.

Names reach SQL only as identifiers checked against ``[A-Za-z][A-Za-z0-9_]*``; passwords
only as bound parameters, and engines hide parameters from their error messages.

SQLAlchemy is imported only where MySQL is used: Terraform starts this provider several
times per command, and importing it costs more than the rest of the provider.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tf.schema import Attribute, Schema
from tf.types import Map, String
from tf.utils import Diagnostics

from infrastructure.localcloud.resources.base import State, StoredResource
from infrastructure.localcloud.store import DATABASE_URL_ENV, data_dir, open_store, shared_url

if TYPE_CHECKING:
    from sqlalchemy import Connection

ADMIN_URL_ENV = "LOCALCLOUD_MYSQL_ADMIN_URL"
DATABASE_VERSIONS = ("MYSQL_5_7", "MYSQL_8_0", "MYSQL_8_4")
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_MYSQL_USER_MAX = 32


def identifier(value: str, what: str, max_length: int = 64) -> str:
    """Names reach SQL as identifiers; anything but letters, digits and '_' is refused."""
    if not _IDENT.match(value) or len(value) > max_length:
        raise ValueError(
            f"invalid {what} {value!r}: a letter, then letters, digits and '_', at most {max_length}"
        )
    return value


def _check_identifiers(diags: Diagnostics, config: dict[str, Any], rules: dict[str, tuple[str, int]]) -> None:
    """Plan-time check, so a bad name fails before anything is created."""
    for key, (what, max_length) in rules.items():
        value = config.get(key)
        if isinstance(value, str):
            try:
                identifier(value, what, max_length)
            except ValueError as exc:
                diags.add_error(f"invalid {what}", str(exc))


def text(statement: str) -> Any:
    from sqlalchemy import text as sql_text

    return sql_text(statement)


@contextmanager
def admin_connection() -> Iterator[Connection]:
    from sqlalchemy import create_engine

    admin_url = os.environ.get(ADMIN_URL_ENV)
    if not admin_url:
        raise ValueError(f"this sql instance is on MySQL but {ADMIN_URL_ENV} is not set")
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", hide_parameters=True)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _instance(instance_id: str) -> dict[str, Any]:
    found = open_store(SqlInstance.kind).get(instance_id)
    if found is None:
        raise ValueError(f"sql instance {instance_id} does not exist")
    return found


def server_database(instance: dict[str, Any], name: str) -> str:
    """The database's name on the server: the name itself on SQLite (one directory per
    instance), ``<name>_<instance hex>`` on a shared MySQL server (at most 64)."""
    if instance["engine"] != "mysql":
        return name
    suffix = instance["id"].rsplit("-", 1)[-1]
    return f"{name[: 63 - len(suffix)]}_{suffix}"


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
                description="One of " + ", ".join(DATABASE_VERSIONS) + " (MySQL semantics).",
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

    def validate(self, diags, type_name, config):  # type: ignore[no-untyped-def]
        super().validate(diags, type_name, config)
        version = config.get("database_version")
        if isinstance(version, str) and version not in DATABASE_VERSIONS:
            diags.add_error(
                f"invalid database_version {version!r}",
                f"database_version must be one of {', '.join(DATABASE_VERSIONS)}",
            )

    def on_create(self, state: State) -> State:
        private_ip = "10.10.0." + str(int(state["id"].rsplit("-", 1)[-1][:2], 16) % 250 + 2)
        admin_url = os.environ.get(ADMIN_URL_ENV)
        if admin_url:
            from sqlalchemy.engine import make_url

            with admin_connection() as conn:  # fail now, not at the first database
                conn.execute(text("SELECT 1"))
            url = make_url(admin_url)
            return {
                "engine": "mysql",
                "host": url.host or "127.0.0.1",
                "port": str(url.port or 3306),
                "private_ip": private_ip,
                "data_path": "",
            }
        if shared_url():
            raise ValueError(
                f"a shared localcloud ({DATABASE_URL_ENV}) needs {ADMIN_URL_ENV} for SQL instances:"
                " a SQLite file would live on one worker only"
            )
        path = data_dir() / "sql-data" / state["id"]
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return {"engine": "sqlite", "host": "", "port": "", "private_ip": private_ip, "data_path": str(path)}

    def on_delete(self, current: State) -> None:
        """Refused while databases of other stacks (sub-hospitals) still live on it: they
        would be lost, or on MySQL left behind with nobody to drop them."""
        left = sorted(
            d["name"] for d in open_store(SqlDatabase.kind).all() if d["instance_id"] == current["id"]
        )
        if left:
            raise ValueError(
                f"sql instance {current['name']} still holds databases {', '.join(left)}: "
                "destroy the stacks that own them first"
            )
        if current.get("data_path"):
            shutil.rmtree(current["data_path"], ignore_errors=True)

    def exists(self, stored: State) -> bool:
        return stored.get("engine") == "mysql" or Path(stored["data_path"]).is_dir()


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
            Attribute("server_name", String(), computed=True, description="Its name on the server."),
        ],
    )

    def validate(self, diags, type_name, config):  # type: ignore[no-untyped-def]
        super().validate(diags, type_name, config)
        _check_identifiers(diags, config, {"name": ("database name", 64)})

    def on_create(self, state: State) -> State:
        name = identifier(state["name"], "database name")
        instance = _instance(state["instance_id"])
        on_server = server_database(instance, name)
        if instance["engine"] == "mysql":
            with admin_connection() as conn:
                conn.execute(text(f"CREATE DATABASE `{identifier(on_server, 'database name')}`"))
        else:
            path = _sqlite_file(instance, name)
            if path.exists():
                raise ValueError(f"database {name} already exists on {instance['name']}")
            sqlite3.connect(path).close()
            path.chmod(0o600)
        return {"server_name": on_server}

    def on_delete(self, current: State) -> None:
        instance = open_store(SqlInstance.kind).get(current["instance_id"])
        if instance is None:
            return
        on_server = identifier(server_database(instance, current["name"]), "database name")
        if instance["engine"] == "mysql":
            with admin_connection() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{on_server}`"))
        else:
            _sqlite_file(instance, on_server).unlink(missing_ok=True)

    def exists(self, stored: State) -> bool:
        instance = open_store(SqlInstance.kind).get(stored["instance_id"])
        if instance is None:
            return False
        on_server = server_database(instance, stored["name"])
        if instance["engine"] != "mysql":
            return _sqlite_file(instance, on_server).is_file()
        with admin_connection() as conn:
            found = conn.execute(
                text("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :name"),
                {"name": on_server},
            ).first()
        return found is not None


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

    def validate(self, diags, type_name, config):  # type: ignore[no-untyped-def]
        super().validate(diags, type_name, config)
        _check_identifiers(
            diags, config, {"name": ("user name", _MYSQL_USER_MAX), "database": ("database name", 64)}
        )

    def _url(self, instance: dict[str, Any], state: State) -> str:
        on_server = server_database(instance, state["database"])
        if instance["engine"] == "mysql":
            user, password = quote(state["name"], safe=""), quote(state["password"], safe="")
            return f"mysql+pymysql://{user}:{password}@{instance['host']}:{instance['port']}/{on_server}"
        return f"sqlite:///{_sqlite_file(instance, on_server)}"

    def on_create(self, state: State) -> State:
        name = identifier(state["name"], "user name", _MYSQL_USER_MAX)
        instance = _instance(state["instance_id"])
        if instance["engine"] == "mysql":
            database = identifier(server_database(instance, state["database"]), "database name")
            with admin_connection() as conn:
                conn.execute(text(f"CREATE USER '{name}'@'%' IDENTIFIED BY :pw"), {"pw": state["password"]})
                conn.execute(text(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{name}'@'%'"))
        return {"connection_string": self._url(instance, state)}

    def on_update(self, current: State, planned: State) -> State:
        instance = _instance(planned["instance_id"])
        if instance["engine"] == "mysql" and current.get("password") != planned["password"]:
            name = identifier(planned["name"], "user name", _MYSQL_USER_MAX)
            with admin_connection() as conn:
                conn.execute(text(f"ALTER USER '{name}'@'%' IDENTIFIED BY :pw"), {"pw": planned["password"]})
        return {"connection_string": self._url(instance, planned)}

    def on_delete(self, current: State) -> None:
        instance = open_store(SqlInstance.kind).get(current["instance_id"])
        if instance is not None and instance["engine"] == "mysql":
            name = identifier(current["name"], "user name", _MYSQL_USER_MAX)
            with admin_connection() as conn:
                conn.execute(text(f"DROP USER IF EXISTS '{name}'@'%'"))

    def exists(self, stored: State) -> bool:
        instance = open_store(SqlInstance.kind).get(stored["instance_id"])
        if instance is None:
            return False
        if instance["engine"] != "mysql":
            return True
        with admin_connection() as conn:
            found = conn.execute(
                text("SELECT 1 FROM mysql.user WHERE User = :name AND Host = '%'"), {"name": stored["name"]}
            ).first()
        return found is not None
