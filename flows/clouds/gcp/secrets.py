"""Reading the secret a GCP hospital's outputs name (``connection_secret``, the MySQL
connection string) from Secret Manager. Values are returned to the caller only: never
logged, never put in an exception."""

from __future__ import annotations

from typing import Any

from flows.clouds.gcp.credentials import gcp_credentials
from flows.settings import Settings


def secret_manager_client(settings: Settings) -> Any:
    """An emulator (drongo, ``SECRET_MANAGER_ENDPOINT``) speaks REST without auth; real
    Secret Manager gets the project's credentials (terraform-sa.json, a block, or ADC)."""
    from google.cloud import secretmanager

    if settings.secret_manager_endpoint:
        from google.auth.credentials import AnonymousCredentials

        return secretmanager.SecretManagerServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": settings.secret_manager_endpoint},
        )
    credentials, _project = gcp_credentials(settings)
    return secretmanager.SecretManagerServiceClient(credentials=credentials)


def read_gcp_secret(reference: str, settings: Settings) -> str:
    """``reference`` is the secret's resource name, ``projects/P/secrets/S`` (its latest
    version), or a version's, ``projects/P/secrets/S/versions/V``."""
    name = reference if "/versions/" in reference else f"{reference}/versions/latest"
    response = secret_manager_client(settings).access_secret_version(name=name)
    return bytes(response.payload.data).decode()
