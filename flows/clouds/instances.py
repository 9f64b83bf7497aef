"""The Airflow document's request shape: N instances named ``{prefix}-{n}``, shared by
the local, AWS and OCI targets.

The name and count rules are declared here once for Python; Terraform's copy is
``infrastructure/shared/instance_variables.tf`` (linked into each instance module), and
``tests/test_modules_static.py`` checks the two agree."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flows.clouds.base import StackContext

NAME_PREFIX_PATTERN = r"^[a-z][a-z0-9-]{0,40}$"
NAME_PREFIX_MAX_LENGTH = 41
MIN_COUNT, MAX_COUNT = 1, 20

NamePrefix = Annotated[
    str,
    StringConstraints(pattern=NAME_PREFIX_PATTERN),
    Field(
        description="Instances are named {prefix}-{n}: a lowercase letter, then a-z, 0-9 or '-',"
        f" at most {NAME_PREFIX_MAX_LENGTH} characters.",
        examples=["test-instance"],
    ),
]


class InstanceOutput(BaseModel):
    instance_id: str
    private_ip: str | None = None
    public_ip: str | None = None


class InstancesOutputs(BaseModel):
    instances: list[InstanceOutput]


class InstancesInputs(BaseModel):
    """Fields every instance target shares; ``provider_config`` is per target."""

    model_config = ConfigDict(extra="forbid")

    cloud_provider: str
    provider_config: BaseModel
    instance_name_prefix: NamePrefix
    count: int = Field(
        1, ge=MIN_COUNT, le=MAX_COUNT, description=f"How many instances ({MIN_COUNT}-{MAX_COUNT})."
    )

    def to_tfvars(self, ctx: StackContext) -> dict[str, Any]:
        return {
            "client_id": ctx.client_id,
            "instance_name_prefix": self.instance_name_prefix,
            "instance_count": self.count,
            **self.provider_config.model_dump(exclude_none=True),
        }

    def sensitive_values(self) -> list[str]:
        return []


class TaggedInstancesInputs(InstancesInputs):
    """Instances on a real cloud, tagged with the client (``client_id``) and the run that
    last applied them (``request_id``, from the module variable ``run_id``)."""

    def to_tfvars(self, ctx: StackContext) -> dict[str, Any]:
        return {**super().to_tfvars(ctx), "run_id": ctx.run_id}
