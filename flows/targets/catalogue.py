"""The entries of the catalogue (see ``flows.targets``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from flows.clouds import aws, gcp, local, oci
from flows.clouds.hospital import HospitalInputs, HospitalOutputs, SubHospitalInputs
from flows.clouds.instances import InstancesOutputs
from flows.targets.target import Credentials, Target
from flows.terraform.backends import BackendPolicy, cloud_backend, gcs_backend, local_or_pg_backend

HOSPITAL_IMMUTABLE = ("client_uuid", "client_name", "region")
"""The database is named from ``client_name``: renaming would drop it and its data."""
SUB_HOSPITAL_IMMUTABLE = (*HOSPITAL_IMMUTABLE, "parent_uuid", "parent_target")
INSTANCES_IMMUTABLE = ("cloud_provider", "provider_config.region")

AWS = Credentials("AWS credentials", aws.credentials)
OCI = Credentials("OCI credentials", oci.credentials)
GCP = Credentials("GCP project", gcp.credentials)

HOSPITAL_EXAMPLE = {
    "client_name": "City General Hospital",
    "client_uuid": "550e8400-e29b-41d4-a716-446655440000",
    "environment": "prod",
    "region": "me-central2",
}
SUB_HOSPITAL_EXAMPLE = {
    **HOSPITAL_EXAMPLE,
    "client_name": "City General Hospital East Wing",
    "client_uuid": "6fa459ea-ee8a-4ca4-894e-db77e160355e",
    "parent_uuid": HOSPITAL_EXAMPLE["client_uuid"],
}

LOCAL_HOSPITAL = Target(
    name="local-hospital",
    module="local-hospital",
    inputs=HospitalInputs,
    outputs=HospitalOutputs,
    backend=local_or_pg_backend,
    description="A hospital on localcloud: SQL instance (SQLite or MariaDB), buckets, secret, network.",
    read_secret=local.read_local_secret,
    example=HOSPITAL_EXAMPLE,
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
    credentials=GCP,
    example=HOSPITAL_EXAMPLE,
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
        inputs=local.LocalInputs,
        outputs=InstancesOutputs,
        backend=local_or_pg_backend,
        description="Instances on localcloud, the embedded default: no cloud account needed.",
        example={"cloud_provider": "local", "instance_name_prefix": "web", "count": 2},
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
        example={**SUB_HOSPITAL_EXAMPLE, "parent_target": "local-hospital"},
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
        credentials=GCP,
        example={**SUB_HOSPITAL_EXAMPLE, "parent_target": "gcp-hospital"},
        immutable=SUB_HOSPITAL_IMMUTABLE,
    ),
    Target(
        name="aws-ec2",
        module="aws-ec2",
        inputs=aws.AwsInputs,
        outputs=InstancesOutputs,
        backend=cloud_backend,
        description="EC2 instances (hashicorp/aws); state in S3 with DynamoDB locking.",
        preflight=aws.preflight,
        readback=aws.readback,
        credentials=AWS,
        example={
            "cloud_provider": "aws",
            "instance_name_prefix": "web",
            "count": 1,
            "provider_config": {
                "region": "us-east-2",
                "instance_type": "t2.micro",
                "subnet_id": "subnet-12345",
                "security_group_ids": ["sg-12345"],
                "ami_id": "ami-12345",
            },
        },
        immutable=INSTANCES_IMMUTABLE,
    ),
    Target(
        name="oci-baremetal",
        module="oci-baremetal",
        inputs=oci.OciInputs,
        outputs=InstancesOutputs,
        backend=cloud_backend,
        description="OCI bare-metal instances (oracle/oci); state in S3-compatible storage or PostgreSQL.",
        preflight=oci.preflight,
        readback=oci.readback,
        terraform_env=oci.oci_terraform_env,
        credentials=OCI,
        example={
            "cloud_provider": "oci",
            "instance_name_prefix": "web",
            "count": 1,
            "provider_config": {
                "region": "eu-frankfurt-1",
                "shape": "BM.Standard3.64",
                "compartment_id": "ocid1.compartment.oc1..aaaa",
                "availability_domain": "Uocm:EU-FRANKFURT-1-AD-1",
                "subnet_id": "ocid1.subnet.oc1..aaaa",
                "image_id": "ocid1.image.oc1..aaaa",
            },
        },
        immutable=INSTANCES_IMMUTABLE,
    ),
)
