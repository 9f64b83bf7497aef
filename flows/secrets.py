"""Reading the secret a stack's outputs name (the MySQL connection string): the local
secret store on the embedded default, Secret Manager on GCP. Values are never logged."""

from __future__ import annotations

from typing import Any

from flows.settings import Settings
from infrastructure.localcloud.resources.secret import Secret
from infrastructure.localcloud.resources.secret import read_secret as read_localcloud_secret
from infrastructure.localcloud.store import Store


def read_local_secret(reference: str, settings: Settings) -> str:
    return read_localcloud_secret(reference, Store(Secret.kind, root=settings.root / "localcloud"))


def secret_manager_client(settings: Settings) -> Any:
    from google.cloud import secretmanager

    if settings.secret_manager_endpoint:  # an emulator (drongo) speaks REST without auth
        from google.auth.credentials import AnonymousCredentials

        return secretmanager.SecretManagerServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": settings.secret_manager_endpoint},
        )
    return secretmanager.SecretManagerServiceClient()


def read_gcp_secret(reference: str, settings: Settings) -> str:
    """``reference`` is the secret's resource name, ``projects/P/secrets/S``."""
    name = reference if "/versions/" in reference else f"{reference}/versions/latest"
    response = secret_manager_client(settings).access_secret_version(name=name)
    return bytes(response.payload.data).decode()
