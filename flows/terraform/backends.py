"""Where a client's state lives. Each policy returns a backend block (written as JSON)
and the secrets it needs (passed only through the process environment)."""

from __future__ import annotations

import re
from typing import Any, Protocol

from pydantic import BaseModel, Field

from flows.settings import Settings


class BackendConfig(BaseModel):
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    secret_config: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="Backend settings that are secrets: passed as -backend-config at init, never written.",
    )

    @property
    def secrets(self) -> list[str]:
        return [*self.env.values(), *self.secret_config.values()]

    def as_json(self) -> dict[str, Any]:
        return {"terraform": {"backend": {self.type: self.config}}}


class BackendPolicy(Protocol):
    def __call__(self, settings: Settings, client_id: str) -> BackendConfig: ...


def local_backend(settings: Settings, client_id: str) -> BackendConfig:
    path = settings.root / "state" / client_id / "terraform.tfstate"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return BackendConfig(type="local", config={"path": str(path)})


def pg_backend(settings: Settings, client_id: str) -> BackendConfig:
    if settings.state_pg_conn_str is None:
        raise ValueError("STATE_BACKEND=pg needs STATE_PG_CONN_STR")
    schema = "tf_" + re.sub(r"[^a-z0-9_]", "_", client_id.lower())
    # Terraform 1.0.3's pg backend does not read PG_CONN_STR: the URL goes in at init.
    return BackendConfig(
        type="pg",
        config={"schema_name": schema},
        secret_config={"conn_str": settings.state_pg_conn_str.get_secret_value()},
    )


def claim_pg_workspace(backend: BackendConfig) -> None:
    """Give the client's pg workspace its row before Terraform first locks it (after ``init``
    made the schema and table). Terraform 1.0.3's pg backend locks a workspace that has no
    row yet with one database-wide advisory lock (-1), held for the whole plan or apply: a
    burst of new clients ran one at a time across every worker, the rest backing off
    (hashicorp/terraform#33217, opentofu/opentofu#2218). With the row there, each run
    takes its own row's lock. The row holds a valid empty state (serial 0)."""
    import json
    import uuid

    import psycopg
    from psycopg import sql

    empty = {
        "version": 4,
        "terraform_version": "1.0.0",
        "serial": 0,
        "lineage": str(uuid.uuid4()),
        "outputs": {},
        "resources": [],
    }
    insert = sql.SQL(
        "INSERT INTO {}.states (name, data) VALUES ('default', %s) ON CONFLICT (name) DO NOTHING"
    )
    with psycopg.connect(backend.secret_config["conn_str"], autocommit=True) as conn:
        conn.execute(insert.format(sql.Identifier(backend.config["schema_name"])), [json.dumps(empty)])


def local_or_pg_backend(settings: Settings, client_id: str) -> BackendConfig:
    """The local* targets: a file per client unless the user chose PostgreSQL."""
    policy = pg_backend if settings.state_backend == "pg" else local_backend
    return policy(settings, client_id)


def google_credentials_env(settings: Settings) -> dict[str, str]:
    """What the google provider and the gcs backend need: a path to the key file, never
    its contents in a file of ours. Without a file they use ADC on their own."""
    path = settings.google_credentials_file
    if path.is_file():
        return {"GOOGLE_APPLICATION_CREDENTIALS": str(path.resolve())}
    return {}


def gcs_backend(settings: Settings, client_id: str) -> BackendConfig:
    """The hospital document's layout: ``gs://STATE_BUCKET_NAME/{client_uuid}/default.tfstate``."""
    return BackendConfig(
        type="gcs",
        config={"bucket": settings.state_bucket_name, "prefix": client_id},
        env=google_credentials_env(settings),
    )


def s3_backend(settings: Settings, client_id: str) -> BackendConfig:
    """S3 state with DynamoDB locking; credentials stay in the worker's environment."""
    config: dict[str, Any] = {
        "bucket": settings.state_bucket_name,
        "key": f"{client_id}/terraform.tfstate",
        "region": settings.state_region,
        "dynamodb_table": settings.state_lock_table,
        "encrypt": True,
    }
    if settings.state_s3_endpoint:
        config.update(
            endpoint=settings.state_s3_endpoint,
            dynamodb_endpoint=settings.state_s3_endpoint,
            sts_endpoint=settings.state_s3_endpoint,
            force_path_style=True,
            skip_credentials_validation=True,
            skip_metadata_api_check=True,
            skip_region_validation=True,
        )
    return BackendConfig(type="s3", config=config)


_CLOUD_BACKENDS: dict[str, BackendPolicy] = {"s3": s3_backend, "pg": pg_backend, "local": local_backend}


def cloud_backend(settings: Settings, client_id: str) -> BackendConfig:
    """The aws-ec2 and oci-baremetal targets: remote state unless the user asks for local."""
    return _CLOUD_BACKENDS[settings.cloud_state_backend](settings, client_id)
