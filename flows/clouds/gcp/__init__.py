"""GCP: the hospital targets' credentials, inputs, pre-flight and Secret Manager reader.
The SDKs are imported only when a function needs them."""

from flows.clouds.gcp.checks import credentials, preflight
from flows.clouds.gcp.credentials import CredentialsUnavailable, gcp_credentials, storage_client
from flows.clouds.gcp.inputs import GcpHospitalInputs, GcpSubHospitalInputs
from flows.clouds.gcp.secrets import read_gcp_secret, secret_manager_client

__all__ = [
    "CredentialsUnavailable",
    "GcpHospitalInputs",
    "GcpSubHospitalInputs",
    "credentials",
    "gcp_credentials",
    "preflight",
    "read_gcp_secret",
    "secret_manager_client",
    "storage_client",
]
