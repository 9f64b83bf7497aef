"""Engine settings, read once from the environment (and ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.logs import LogFormat

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENV_FILES = (PROJECT_ROOT / ".env", Path(".env"))
"""The project's ``.env`` (read whatever directory a flow run starts in: a process worker
starts each run in a temporary one), then the current directory's, which wins."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILES, extra="ignore", populate_by_name=True)

    data_dir: Path = Field(
        Path(".tenantform"),
        validation_alias=AliasChoices("TENANTFORM_DATA_DIR", "data_dir"),
        description="Workspaces, local state, the localcloud objects, results and the registry;"
        " a relative path is taken from the project directory.",
    )
    terraform_bin: Path | None = Field(
        None, description="Terraform or OpenTofu binary; default: the pinned Terraform 1.0.3."
    )
    log_format: LogFormat = Field(
        "json",
        description="json: one JSON object per line with run_id and client_id (gateway, worker, "
        "flow runs); text: plain lines.",
    )
    task_retries: int = Field(3, ge=0, description="Retries of each Terraform task.")
    task_retry_delay_seconds: float = Field(300, ge=0, description="Seconds between retries.")
    fleet_concurrency: int = Field(
        2, ge=1, description="Terraform runs at once across all clients (CPU-bound locally)."
    )
    lock_timeout: str = Field("60s", description="Terraform -lock-timeout for state locks.")
    gateway_url: str | None = Field(
        None,
        validation_alias=AliasChoices("TENANTFORM_GATEWAY_URL", "gateway_url"),
        description="The gateway a scheduled reconciliation sweep asks for the fleet.",
    )
    api_key: SecretStr | None = Field(None, description="The key the sweep presents to the gateway.")
    reconcile_cron: str | None = Field(
        None, description="When Prefect starts the reconciliation sweep (cron); default: prefect.yaml's."
    )
    approval_timeout_seconds: float = Field(
        86400, gt=0, description="How long a plan waits for approval before its run fails."
    )
    state_backend: Literal["local", "pg"] = Field(
        "local", description="State backend of the local* targets: per-client file or PostgreSQL."
    )
    state_pg_conn_str: SecretStr | None = Field(
        None, description="PostgreSQL URL for the pg state backend (one schema per client)."
    )

    # Hospitals (the GCP document) ---------------------------------------------------------
    gcp_project_id: str | None = Field(
        None, description="GCP project; when set, hospitals are built on GCP, else on localcloud."
    )
    gcp_region: str = Field("me-central2", description="Default GCP region.")
    state_bucket_name: str = Field(
        "medical-circles-terraform-state-files", description="GCS bucket holding per-client state."
    )
    password_length: int = Field(16, ge=8, le=64, description="Generated database password length.")
    deletion_protection: bool = Field(True, description="Cloud SQL deletion protection on GCP.")
    secret_manager_endpoint: str | None = Field(
        None, description="Secret Manager REST endpoint override (an emulator such as drongo)."
    )

    # GCP credentials (the hospital document) ----------------------------------------------
    google_credentials_file: Path = Field(
        Path("terraform-sa.json"), description="Service-account key used when present, else ADC."
    )
    gcp_credentials_block: str | None = Field(
        None, description="Name of a prefect-gcp GcpCredentials block to use instead."
    )

    # AWS and OCI targets (the Airflow document) -------------------------------------------
    cloud_state_backend: Literal["s3", "pg", "local"] = Field(
        "s3", description="State of the aws-ec2 / oci-baremetal targets: s3 (+ DynamoDB lock), pg or local."
    )
    state_lock_table: str = Field(
        "tenantform-terraform-locks", description="DynamoDB table for S3 state locks."
    )
    state_region: str = Field("us-east-2", description="Region of the S3 state bucket and lock table.")
    state_s3_endpoint: str | None = Field(
        None, description="S3/DynamoDB endpoint override for the state backend (e.g. moto server)."
    )
    oci_service_endpoint: str | None = Field(
        None, description="Endpoint override for the OCI SDK's pre-flight and read-back calls."
    )

    @property
    def root(self) -> Path:
        """Absolute; a relative data dir is taken from the project directory, never from the
        directory a run happens to start in (a worker's runs start in temporary ones)."""
        return (PROJECT_ROOT / self.data_dir).resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
