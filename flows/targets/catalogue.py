"""The entries of the catalogue (see ``flows.targets``)."""

from __future__ import annotations

from flows.clouds import aws, oci
from flows.secrets import read_gcp_secret, read_local_secret
from flows.targets import Target
from flows.targets.aws import AwsRequest
from flows.targets.hospital import (
    GcpHospitalInputs,
    GcpSubHospitalInputs,
    HospitalInputs,
    HospitalOutputs,
    SubHospitalInputs,
    gcp_preflight,
)
from flows.targets.instances import InstancesOutputs, LocalRequest
from flows.targets.oci import OciRequest, oci_terraform_env
from flows.terraform.backends import cloud_backend, gcs_backend, local_or_pg_backend

TARGETS: tuple[Target, ...] = (
    Target(
        name="local",
        module="local",
        inputs=LocalRequest,
        outputs=InstancesOutputs,
        backend=local_or_pg_backend,
        description="Instances on localcloud, the embedded default: no cloud account needed.",
    ),
    Target(
        name="local-hospital",
        module="local-hospital",
        inputs=HospitalInputs,
        outputs=HospitalOutputs,
        backend=local_or_pg_backend,
        description="A hospital on localcloud: SQL instance (SQLite or MariaDB), buckets, secret, network.",
        read_secret=read_local_secret,
    ),
    Target(
        name="local-sub-hospital",
        module="local-sub-hospital",
        inputs=SubHospitalInputs,
        outputs=HospitalOutputs,
        backend=local_or_pg_backend,
        description="A sub-hospital on localcloud: own database, user and secret on the parent's instance.",
        read_secret=read_local_secret,
    ),
    Target(
        name="gcp-hospital",
        module="gcp-hospital",
        inputs=GcpHospitalInputs,
        outputs=HospitalOutputs,
        backend=gcs_backend,
        description="A hospital on GCP: Cloud SQL MySQL 8.0 (private IP), GCS buckets, Secret Manager, VPC.",
        preflight=gcp_preflight,
        read_secret=read_gcp_secret,
    ),
    Target(
        name="gcp-sub-hospital",
        module="gcp-sub-hospital",
        inputs=GcpSubHospitalInputs,
        outputs=HospitalOutputs,
        backend=gcs_backend,
        description="A sub-hospital on GCP: its own database, user and secret on the parent's Cloud SQL.",
        preflight=gcp_preflight,
        read_secret=read_gcp_secret,
    ),
    Target(
        name="aws-ec2",
        module="aws-ec2",
        inputs=AwsRequest,
        outputs=InstancesOutputs,
        backend=cloud_backend,
        description="EC2 instances (hashicorp/aws); state in S3 with DynamoDB locking.",
        preflight=aws.preflight,
        readback=aws.readback,
    ),
    Target(
        name="oci-baremetal",
        module="oci-baremetal",
        inputs=OciRequest,
        outputs=InstancesOutputs,
        backend=cloud_backend,
        description="OCI bare-metal instances (oracle/oci); state in S3-compatible storage or PostgreSQL.",
        preflight=oci.preflight,
        readback=oci.readback,
        terraform_env=oci_terraform_env,
    ),
)
