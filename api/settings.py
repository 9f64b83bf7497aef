"""Gateway settings: auth, the registry (URL and backups), the dispatcher's pace."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.settings import ENV_FILES, get_settings


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILES, extra="ignore")

    api_key: SecretStr | None = Field(
        None, description="X-API-Key every route but /health requires (tenantform up generates one)."
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
        600, gt=0, description="A flow run no worker has started after this long is cancelled and failed."
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

    @property
    def registry_url(self) -> str:
        if self.database_url:
            return self.database_url
        root = get_settings().root
        root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{root / 'clients.db'}"


@lru_cache
def get_gateway_settings() -> GatewaySettings:
    return GatewaySettings()
