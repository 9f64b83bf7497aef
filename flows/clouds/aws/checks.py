"""AWS through boto3: pre-flight checks before Terraform, read-back after apply.

Both fail in seconds with a message naming the credential, region or id at fault.
boto3 honours ``AWS_ENDPOINT_URL`` (how the tests point it at moto server)."""

from __future__ import annotations

import os
from typing import Any

from flows.clouds.aws.request import AwsInputs
from flows.clouds.errors import PreflightError, ReadbackError
from flows.settings import Settings

_CONFIG: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 15, "retries": {"max_attempts": 2}}


def _session(region: str) -> Any:
    import boto3

    return boto3.session.Session(region_name=region)


def _client(session: Any, service: str) -> Any:
    from botocore.config import Config

    return session.client(service, config=Config(**_CONFIG))


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))


def preflight(request: AwsInputs) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    cfg = request.provider_config
    session = _session(cfg.region)
    if session.get_credentials() is None:
        raise PreflightError(
            "AWS credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    try:
        _client(session, "sts").get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        raise PreflightError(f"AWS credentials rejected in {cfg.region}: {_code(exc)}") from None
    ec2 = _client(session, "ec2")
    try:
        subnet = ec2.describe_subnets(SubnetIds=[cfg.subnet_id])["Subnets"][0]
    except ClientError as exc:
        raise PreflightError(f"subnet_id {cfg.subnet_id} not found in {cfg.region} ({_code(exc)})") from None
    for group_id in cfg.security_group_ids:
        try:
            group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        except ClientError as exc:
            raise PreflightError(
                f"security group {group_id} not found in {cfg.region} ({_code(exc)})"
            ) from None
        if group.get("VpcId") != subnet.get("VpcId"):
            raise PreflightError(f"security group {group_id} is not in the VPC of subnet {cfg.subnet_id}")
    try:
        images = ec2.describe_images(ImageIds=[cfg.ami_id])["Images"]
    except ClientError as exc:
        raise PreflightError(f"ami_id {cfg.ami_id} not found in {cfg.region} ({_code(exc)})") from None
    if not images:
        raise PreflightError(f"ami_id {cfg.ami_id} not found in {cfg.region}")


def describe_instances(region: str, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
    """id -> {state, private_ip, public_ip}; missing ids are absent. Reused by reconciliation."""
    from botocore.exceptions import ClientError

    if not instance_ids:
        return {}
    ec2 = _client(_session(region), "ec2")
    try:
        reservations = ec2.describe_instances(InstanceIds=instance_ids)["Reservations"]
    except ClientError as exc:
        if _code(exc).startswith("InvalidInstanceID"):
            return {}
        raise
    return {
        i["InstanceId"]: {
            "state": i["State"]["Name"],
            "private_ip": i.get("PrivateIpAddress"),
            "public_ip": i.get("PublicIpAddress"),
        }
        for r in reservations
        for i in r["Instances"]
    }


def readback(request: AwsInputs, outputs: dict[str, Any]) -> dict[str, Any]:
    """Confirm every instance exists, runs, and has the IPs Terraform reported."""
    wanted = outputs.get("instances", [])
    seen = describe_instances(request.provider_config.region, [i["instance_id"] for i in wanted])
    for instance in wanted:
        found = seen.get(instance["instance_id"])
        if found is None:
            raise ReadbackError(f"instance {instance['instance_id']} does not exist in AWS")
        if found["state"] not in ("running", "pending"):
            raise ReadbackError(f"instance {instance['instance_id']} is {found['state']}, not running")
        if found["private_ip"] != instance.get("private_ip"):
            raise ReadbackError(
                f"instance {instance['instance_id']} private IP differs from Terraform's output"
            )
    return outputs


def credentials(settings: Settings) -> str:
    """For ``tenantform doctor``: the variables the AWS SDK and Terraform read, present."""
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        return "present"
    raise PreflightError("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE not set")
