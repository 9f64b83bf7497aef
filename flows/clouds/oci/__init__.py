"""OCI: the ``oci-baremetal`` request, the credentials Terraform gets, and the ``oci`` SDK
pre-flight and read-back (the SDK is imported only when a check runs)."""

from flows.clouds.oci.checks import credentials, describe_instance, oci_config, preflight, readback
from flows.clouds.oci.request import OCI_ENV_TO_TF_VAR, OciConfig, OciInputs, oci_terraform_env

__all__ = [
    "OCI_ENV_TO_TF_VAR",
    "OciConfig",
    "OciInputs",
    "credentials",
    "describe_instance",
    "oci_config",
    "oci_terraform_env",
    "preflight",
    "readback",
]
