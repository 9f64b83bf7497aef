"""The settings: one model, read once from the environment (and ``.env``), by every part.

``Settings`` is the only settings model. Its fields come in sections (each a plain
pydantic model it inherits from, so the fields stay flat and every variable keeps its
name): the engine (flows and the worker), the gateway, the failure notifications and the
``tenantform`` CLI. It lives here, in the lowest layer that reads it: the gateway, the
launcher and the CLI read it through ``get_settings()`` too. ``.env.example`` is generated
from it (``python -m deployments.envexample``).

Variables read outside it are Prefect's own (``PREFECT_*``), the clouds' SDK credentials,
localcloud's (``LOCALCLOUD_*``) and the warm process's plumbing (``TENANTFORM_WARM_*``);
tests/test_settings_model.py keeps it that way."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.logs import LogFormat

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENV_FILES = (PROJECT_ROOT / ".env", Path(".env"))
"""The project's ``.env`` (read whatever directory a flow run starts in: a process worker
starts each run in a temporary one), then the current directory's, which wins."""


class EngineSection(BaseModel):
    """The engine: data dir, Terraform, retries, state backends, the reconciliation sweep
    (the flows and the worker read these)."""

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
    sweep_shard_size: int = Field(
        50,
        ge=1,
        description="Clients per shard of a reconciliation sweep: a larger sweep runs each shard as a "
        "flow run of its own on the work pool, so every worker takes part.",
    )
    lock_timeout: str = Field("60s", description="Terraform -lock-timeout for state locks.")
    gateway_url: str | None = Field(
        None,
        validation_alias=AliasChoices("TENANTFORM_GATEWAY_URL", "gateway_url"),
        description="The gateway a scheduled reconciliation sweep asks for the fleet.",
    )
    reconcile_cron: str | None = Field(
        None, description="When Prefect starts the reconciliation sweep (cron); default: prefect.yaml's."
    )
    approval_timeout_seconds: float = Field(
        86400, gt=0, description="How long a plan waits for approval before its run fails."
    )
    heartbeat_lost_seconds: int = Field(
        90,
        gt=30,
        description="A running flow run that sends no heartbeat for this long is crashed (its worker "
        "died with it) by the automation `tenantform up` and `deploy` set up on Prefect; runs send one "
        "every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (30 under tenantform up, Prefect's least).",
    )
    policy_dir: Path | None = Field(
        None,
        description="A directory of the operator's own Rego policies (and JSON data) checked on every "
        "plan with the built-in ones; read afresh by every run. A relative path is taken from the "
        "project directory.",
    )
    modules_dir: Path | None = Field(
        None,
        description="The Terraform modules the targets name, one directory each (e.g. your own "
        "modules checkout); default: the project's infrastructure/modules. A relative path is taken "
        "from the project directory.",
    )
    module_revisions_dir: Path | None = Field(
        None,
        description="Where module revisions are kept (the gateway records them, every worker reads "
        "them: share it between them all); default: <TENANTFORM_DATA_DIR>/revisions. A relative path "
        "is taken from the project directory.",
    )
    module_revision_label: str = Field(
        "",
        max_length=128,
        description="Label of the module revisions the gateway records; empty: `git describe` of the "
        "project, else the package version.",
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


class GatewaySection(BaseModel):
    """The gateway: auth, the registry (URL and backups), the dispatcher's pace, limits."""

    api_key: SecretStr | None = Field(
        None,
        description="X-API-Key every route but /health requires (tenantform up generates one); "
        "the reconciliation sweep and the CLI present it.",
    )
    api_username: str | None = Field(None, description="HTTP Basic user for the Airflow-style routes.")
    api_password: SecretStr | None = Field(None, description="HTTP Basic password for those routes.")
    database_url: str | None = Field(
        None, description="Registry URL; default sqlite:///<TENANTFORM_DATA_DIR>/clients.db."
    )
    dispatch_interval_seconds: float = Field(
        1.0, gt=0, description="How often the dispatcher retries requests Prefect has not taken yet."
    )
    sync_interval_seconds: float = Field(
        1.0, gt=0, description="How often in-progress runs are read back from Prefect."
    )
    rate_limit_per_second: float = Field(
        50, ge=0, description="Requests per second each API key may make, sustained; 0: no limit."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body the gateway reads; larger: 413."
    )
    rate_limit_burst: int = Field(200, ge=1, description="Requests each API key may make at once.")
    callback_secret: SecretStr | None = Field(
        None, description="Key of the HMAC-SHA256 signature on calls to clients' callback URLs."
    )
    late_run_seconds: float = Field(
        600,
        gt=0,
        description="A flow run no worker has started after this long, while no worker polls its "
        "pool, is cancelled and failed (behind busy workers it waits its turn).",
    )
    pending_run_seconds: float = Field(
        300,
        gt=0,
        description="A flow run a worker took (Pending) but started no process for after this "
        "long is handed back to the work pool: the worker died between the two.",
    )
    database_backup_bucket: str | None = Field(
        None, description="GCS bucket for SQLite registry backups; unset: no backups."
    )
    database_backup_interval_seconds: float = Field(300, gt=0, description="Seconds between backups.")
    database_backup_object: str = Field("clients.db", description="Object name of the backup.")


class NotificationsSection(BaseModel):
    """Failure notifications, set up on Prefect by ``tenantform up`` / ``deploy``; unset: none."""

    notify_webhook_url: SecretStr | None = Field(
        None, description="POSTed a JSON message on every failed or crashed run (kept secret)."
    )
    notify_email_to: str | None = Field(
        None, description="Comma-separated addresses emailed on every failed or crashed run."
    )
    smtp_host: str | None = Field(None, description="SMTP server the emails go through.")
    smtp_port: int = Field(587, ge=1, le=65535, description="Its port.")
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="STARTTLS on a plain connection, implicit TLS (465), or none."
    )
    smtp_username: str | None = Field(None, description="SMTP login; unset: no login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_from: str | None = Field(None, description="The emails' From address.")

    @property
    def email_recipients(self) -> list[str]:
        return [a.strip() for a in (self.notify_email_to or "").split(",") if a.strip()]

    def check_notifications(self) -> None:
        """Refuse half-set email settings, naming the variable. Checked where notifications
        are set up (``up``, ``deploy``), not on every read: a wrong SMTP setting must not stop
        the gateway or a flow run."""
        if not self.email_recipients:
            return
        if bad := [a for a in self.email_recipients if "@" not in a]:
            raise ValueError(f"NOTIFY_EMAIL_TO: not an email address: {', '.join(bad)}")
        if not self.smtp_host:
            raise ValueError("NOTIFY_EMAIL_TO is set but SMTP_HOST is not")
        if not self.smtp_from or "@" not in self.smtp_from:
            raise ValueError("NOTIFY_EMAIL_TO is set but SMTP_FROM (an email address) is not")
        if self.smtp_password and not self.smtp_username:
            raise ValueError("SMTP_PASSWORD is set but SMTP_USERNAME is not")


class CliSection(BaseModel):
    """The ``tenantform`` CLI's commands that talk to a gateway over HTTP (with API_KEY)."""

    cli_gateway_url: str = Field(
        "http://127.0.0.1:8000",
        validation_alias=AliasChoices("TENANTFORM_URL", "cli_gateway_url"),
        description="The gateway the CLI (and tenantform doctor) talks to.",
    )


SECTIONS: tuple[type[BaseModel], ...] = (EngineSection, GatewaySection, NotificationsSection, CliSection)
"""The sections of ``Settings``, in the order its fields are listed (``.env.example``)."""


# Bases in reverse: pydantic lists the fields of the last base first.
class Settings(CliSection, NotificationsSection, GatewaySection, EngineSection, BaseSettings):
    """Every setting of tenantform: the engine, the gateway, failure notifications, the CLI."""

    model_config = SettingsConfigDict(env_file=ENV_FILES, extra="ignore", populate_by_name=True)

    @property
    def root(self) -> Path:
        """Absolute; a relative data dir is taken from the project directory, never from the
        directory a run happens to start in (a worker's runs start in temporary ones)."""
        return (PROJECT_ROOT / self.data_dir).resolve()

    @property
    def modules_root(self) -> Path:
        """``MODULES_DIR`` made absolute, or the project's ``infrastructure/modules``."""
        if self.modules_dir is None:
            return PROJECT_ROOT / "infrastructure" / "modules"
        return (PROJECT_ROOT / self.modules_dir).resolve()

    @property
    def revisions_root(self) -> Path:
        """``MODULE_REVISIONS_DIR`` made absolute, or ``<data dir>/revisions``."""
        if self.module_revisions_dir is None:
            return self.root / "revisions"
        return (PROJECT_ROOT / self.module_revisions_dir).resolve()

    @property
    def policy_dirs(self) -> list[Path]:
        """The built-in policies, then the operator's ``POLICY_DIR`` when set."""
        from flows.policy.engine import BUILTIN_DIR

        own = [(PROJECT_ROOT / self.policy_dir).resolve()] if self.policy_dir else []
        return [BUILTIN_DIR, *own]

    @property
    def registry_url(self) -> str:
        if self.database_url:
            return self.database_url
        root = self.root
        root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{root / 'clients.db'}"

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name → the environment variable it is read from."""
        names = {}
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                alias = next(c for c in alias.choices if isinstance(c, str))
            names[name] = (alias if isinstance(alias, str) else name).upper()
        return names


@lru_cache
def get_settings() -> Settings:
    return Settings()
