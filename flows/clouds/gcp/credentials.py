"""GCP credentials as the hospital document has them: ``terraform-sa.json`` when present,
else application default credentials; or a prefect-gcp ``GcpCredentials`` block by name."""

from __future__ import annotations

import os
from typing import Any

from flows.settings import Settings


class CredentialsUnavailable(RuntimeError):
    pass


def gcp_credentials(settings: Settings) -> tuple[Any, str | None]:
    """(credentials, project). Nothing about the credentials is ever logged."""
    if settings.gcp_credentials_block:
        from prefect_gcp import GcpCredentials

        block = GcpCredentials.load(settings.gcp_credentials_block)
        return block.get_credentials_from_service_account(), block.project or settings.gcp_project_id
    path = settings.google_credentials_file
    if path.is_file():
        from google.oauth2 import service_account

        creds = service_account.Credentials.from_service_account_file(str(path))  # type: ignore[no-untyped-call]
        return creds, settings.gcp_project_id or creds.project_id
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        creds, project = google.auth.default()
    except DefaultCredentialsError as exc:
        raise CredentialsUnavailable(
            f"no GCP credentials: no {path} and no application default credentials ({type(exc).__name__})"
        ) from None
    return creds, settings.gcp_project_id or project


def storage_client(settings: Settings) -> Any:
    from google.cloud import storage  # type: ignore[attr-defined]

    if os.environ.get("STORAGE_EMULATOR_HOST"):  # the client honours it; emulators take no auth
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project="test", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    credentials, project = gcp_credentials(settings)
    return storage.Client(project=project, credentials=credentials)
