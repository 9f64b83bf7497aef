"""Reading the secret a stack's outputs name (``connection_secret``, the MySQL connection
string): the local secret store on the embedded default, Secret Manager on GCP. Each
hospital target names its reader in the catalogue (``Target.read_secret``).

Values are returned to the caller only: never logged, never put in an exception.
"""

from __future__ import annotations

from typing import Any

from flows.settings import Settings
from infrastructure.localcloud.resources.secret import Secret
from infrastructure.localcloud.resources.secret import read_secret as read_localcloud_secret
from infrastructure.localcloud.store import Store


def read_local_secret(reference: str, settings: Settings) -> str:
    """``localcloud/secrets/<id>`` from the localcloud store of this data dir."""
    return read_localcloud_secret(reference, Store(Secret.kind, root=settings.root / "localcloud"))


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
    from flows.clouds.gcp import gcp_credentials

    credentials, _project = gcp_credentials(settings)
    return secretmanager.SecretManagerServiceClient(credentials=credentials)


def read_gcp_secret(reference: str, settings: Settings) -> str:
    """``reference`` is the secret's resource name, ``projects/P/secrets/S`` (its latest
    version), or a version's, ``projects/P/secrets/S/versions/V``."""
    name = reference if "/versions/" in reference else f"{reference}/versions/latest"
    response = secret_manager_client(settings).access_secret_version(name=name)
    return bytes(response.payload.data).decode()
