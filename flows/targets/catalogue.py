"""The entries of the catalogue (see ``flows.targets``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from flows.clouds import aws, gcp, local, oci
from flows.clouds.hospital import HospitalInputs, HospitalOutputs, SubHospitalInputs
from flows.clouds.instances import InstancesOutputs
from flows.targets.target import Target
from flows.terraform.backends import BackendPolicy, cloud_backend, gcs_backend, local_or_pg_backend

HOSPITAL_IMMUTABLE = ("client_uuid", "client_name", "region")
"""The database is named from ``client_name``: renaming would drop it and its data."""
SUB_HOSPITAL_IMMUTABLE = (*HOSPITAL_IMMUTABLE, "parent_uuid", "parent_target")
INSTANCES_IMMUTABLE = ("cloud_provider", "provider_config.region")

LOCAL_HOSPITAL = Target(
    name="local-hospital",
    module="local-hospital",
    inputs=HospitalInputs,
    outputs=HospitalOutputs,
    backend=local_or_pg_backend,
    description="A hospital on localcloud: SQL instance (SQLite or MariaDB), buckets, secret, network.",
    read_secret=local.read_local_secret,
    immutable=HOSPITAL_IMMUTABLE,
)

GCP_HOSPITAL = Target(
    name="gcp-hospital",
    module="gcp-hospital",
    inputs=gcp.GcpHospitalInputs,
    outputs=HospitalOutputs,
    backend=gcs_backend,
    description="A hospital on GCP: Cloud SQL MySQL 8.0 (private IP), GCS buckets, Secret Manager, VPC.",
    preflight=gcp.preflight,
    read_secret=gcp.read_gcp_secret,
    immutable=HOSPITAL_IMMUTABLE,
)

HOSPITAL_PARENTS: Mapping[str, BackendPolicy] = MappingProxyType(
    {t.name: t.backend for t in (LOCAL_HOSPITAL, GCP_HOSPITAL)}
)
"""The targets a sub-hospital may name as ``parent_target``, with the backend policy that
locates the parent's state."""


class LocalSubHospitalInputs(SubHospitalInputs):
    parents = HOSPITAL_PARENTS


class GcpSubHospitalInputs(gcp.GcpSubHospitalInputs):
    parents = HOSPITAL_PARENTS


TARGETS: tuple[Target, ...] = (
    Target(
        name="local",
        module="local",
        inputs=local.LocalRequest,
        outputs=InstancesOutputs,
        backend=local_or_pg_backend,
        description="Instances on localcloud, the embedded default: no cloud account needed.",
        immutable=("cloud_provider",),
    ),
    LOCAL_HOSPITAL,
    Target(
        name="local-sub-hospital",
        module="local-sub-hospital",
        inputs=LocalSubHospitalInputs,
        outputs=HospitalOutputs,
        backend=local_or_pg_backend,
        description="A sub-hospital on localcloud: own database, user and secret on the parent's instance.",
        read_secret=local.read_local_secret,
        immutable=SUB_HOSPITAL_IMMUTABLE,
    ),
    GCP_HOSPITAL,
    Target(
        name="gcp-sub-hospital",
        module="gcp-sub-hospital",
        inputs=GcpSubHospitalInputs,
        outputs=HospitalOutputs,
        backend=gcs_backend,
        description="A sub-hospital on GCP: its own database, user and secret on the parent's Cloud SQL.",
        preflight=gcp.preflight,
        read_secret=gcp.read_gcp_secret,
        immutable=SUB_HOSPITAL_IMMUTABLE,
    ),
    Target(
        name="aws-ec2",
        module="aws-ec2",
        inputs=aws.AwsRequest,
        outputs=InstancesOutputs,
        backend=cloud_backend,
        description="EC2 instances (hashicorp/aws); state in S3 with DynamoDB locking.",
        preflight=aws.preflight,
        readback=aws.readback,
        immutable=INSTANCES_IMMUTABLE,
    ),
    Target(
        name="oci-baremetal",
        module="oci-baremetal",
        inputs=oci.OciRequest,
        outputs=InstancesOutputs,
        backend=cloud_backend,
        description="OCI bare-metal instances (oracle/oci); state in S3-compatible storage or PostgreSQL.",
        preflight=oci.preflight,
        readback=oci.readback,
        terraform_env=oci.oci_terraform_env,
        immutable=INSTANCES_IMMUTABLE,
    ),
)
