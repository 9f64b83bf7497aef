"""OCI through the ``oci`` SDK: pre-flight checks before Terraform, read-back after apply.

The SDK signs every request with the user's API key; ``OCI_SERVICE_ENDPOINT`` (a setting)
redirects the calls, which is how the tests point them at a local stub."""

from __future__ import annotations

import os
from typing import Any

from flows.clouds.base import require_env
from flows.clouds.errors import PreflightError, ReadbackError
from flows.clouds.oci.request import OCI_ENV_TO_TF_VAR, OciInputs
from flows.settings import Settings, get_settings


def oci_config(region: str) -> dict[str, Any]:
    require_env(*OCI_ENV_TO_TF_VAR, cloud="OCI")
    return {
        "tenancy": os.environ["OCI_TENANCY_OCID"],
        "user": os.environ["OCI_USER_OCID"],
        "fingerprint": os.environ["OCI_FINGERPRINT"],
        "key_file": os.environ["OCI_PRIVATE_KEY_PATH"],
        "region": region,
    }


def _clients(region: str) -> tuple[Any, Any, Any]:
    import oci

    config = oci_config(region)
    try:
        oci.config.validate_config(config)
    except oci.exceptions.InvalidConfig as exc:
        raise PreflightError(f"OCI configuration invalid: {exc}") from None
    if not os.path.isfile(config["key_file"]):
        raise PreflightError(f"OCI_PRIVATE_KEY_PATH {config['key_file']} does not exist")
    extra: dict[str, Any] = {"timeout": (5, 15)}
    endpoint = get_settings().oci_service_endpoint
    if endpoint:
        extra["service_endpoint"] = endpoint
    return (
        oci.identity.IdentityClient(config, **extra),
        oci.core.VirtualNetworkClient(config, **extra),
        oci.core.ComputeClient(config, **extra),
    )


def preflight(request: OciInputs) -> None:
    import oci

    cfg = request.provider_config
    identity, network, _ = _clients(cfg.region)
    try:
        identity.get_user(os.environ["OCI_USER_OCID"])
    except oci.exceptions.ServiceError as exc:
        raise PreflightError(
            f"OCI credentials rejected ({exc.status} {exc.code}) for OCI_USER_OCID"
        ) from None
    try:
        identity.get_compartment(cfg.compartment_id)
    except oci.exceptions.ServiceError as exc:
        raise PreflightError(f"compartment_id {cfg.compartment_id} not found ({exc.status})") from None
    try:
        network.get_subnet(cfg.subnet_id)
    except oci.exceptions.ServiceError as exc:
        raise PreflightError(f"subnet_id {cfg.subnet_id} not found ({exc.status})") from None


def describe_instance(region: str, compartment_id: str, instance_id: str) -> dict[str, Any] | None:
    """{state, private_ip, public_ip} of one instance, or None. Reused by reconciliation."""
    import oci

    _, network, compute = _clients(region)
    try:
        instance = compute.get_instance(instance_id).data
    except oci.exceptions.ServiceError as exc:
        if exc.status == 404:
            return None
        raise
    private_ip = public_ip = None
    for attachment in compute.list_vnic_attachments(compartment_id, instance_id=instance_id).data:
        vnic = network.get_vnic(attachment.vnic_id).data
        if vnic.is_primary:
            private_ip, public_ip = vnic.private_ip, vnic.public_ip
    return {"state": instance.lifecycle_state, "private_ip": private_ip, "public_ip": public_ip}


def readback(request: OciInputs, outputs: dict[str, Any]) -> dict[str, Any]:
    cfg = request.provider_config
    for instance in outputs.get("instances", []):
        found = describe_instance(cfg.region, cfg.compartment_id, instance["instance_id"])
        if found is None:
            raise ReadbackError(f"instance {instance['instance_id']} does not exist in OCI")
        if found["state"] != "RUNNING":
            raise ReadbackError(f"instance {instance['instance_id']} is {found['state']}, not RUNNING")
        if found["private_ip"] != instance.get("private_ip"):
            raise ReadbackError(
                f"instance {instance['instance_id']} private IP differs from Terraform's output"
            )
    return outputs


def credentials(settings: Settings) -> str:
    """For ``tenantform doctor``: the variables Terraform is given, present."""
    require_env(*OCI_ENV_TO_TF_VAR, cloud="OCI")
    return "present"
