"""GCP pre-flight: before Terraform touches the gcs backend, a project and credentials."""

from __future__ import annotations

from flows.clouds.errors import PreflightError
from flows.clouds.gcp.credentials import CredentialsUnavailable, gcp_credentials
from flows.clouds.hospital import HospitalInputs
from flows.settings import Settings, get_settings


def preflight(inputs: HospitalInputs) -> None:
    """A project and credentials, or a clear error."""
    settings = get_settings()
    if not settings.gcp_project_id:
        raise PreflightError("GCP_PROJECT_ID is not set: the gcp hospital targets need a project")
    try:
        gcp_credentials(settings)
    except CredentialsUnavailable as exc:
        raise PreflightError(str(exc)) from None


def credentials(settings: Settings) -> str:
    """For ``tenantform doctor``: a project (without one, hospitals are built on localcloud)."""
    if not settings.gcp_project_id:
        raise PreflightError("GCP_PROJECT_ID not set: hospitals are built on localcloud")
    return settings.gcp_project_id
