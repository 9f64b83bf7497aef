"""``aws-ec2``: the Airflow document's AWS request."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flows.clouds.instances import TaggedInstancesInputs

SecurityGroupId = Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]+$")]


class AwsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", examples=["us-east-2"])
    instance_type: str = Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$", examples=["t2.micro"])
    subnet_id: str = Field(pattern=r"^subnet-[0-9a-f]+$", examples=["subnet-12345"])
    security_group_ids: list[SecurityGroupId] = Field(min_length=1, max_length=5, examples=[["sg-12345"]])
    ami_id: str = Field(pattern=r"^ami-[0-9a-f]+$", examples=["ami-12345"])


class AwsInputs(TaggedInstancesInputs):
    cloud_provider: Literal["aws"]
    provider_config: AwsConfig
