"""AWS: the ``aws-ec2`` request, and boto3 pre-flight and read-back (boto3 is imported
only when a check runs)."""

from flows.clouds.aws.checks import credentials, describe_instances, preflight, readback
from flows.clouds.aws.request import AwsConfig, AwsInputs

__all__ = ["AwsConfig", "AwsInputs", "credentials", "describe_instances", "preflight", "readback"]
