"""The Airflow document's request shape: N instances named ``{prefix}-{n}``."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flows.settings import Settings
from flows.targets import PreflightError

NamePrefix = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,40}$"),
    Field(
        description="Instances are named {prefix}-{n}: a lowercase letter, then a-z, 0-9 or '-',"
        " at most 41 characters.",
        examples=["test-instance"],
    ),
]


class InstanceOutput(BaseModel):
    instance_id: str
    private_ip: str | None = None
    public_ip: str | None = None


class InstancesOutputs(BaseModel):
    instances: list[InstanceOutput]


class InstancesRequest(BaseModel):
    """Fields every instance target shares; ``provider_config`` is per target."""

    model_config = ConfigDict(extra="forbid")

    cloud_provider: str
    provider_config: BaseModel
    instance_name_prefix: NamePrefix
    count: int = Field(1, ge=1, le=20, description="How many instances (1-20).")

    def to_tfvars(self, client_id: str, settings: Settings) -> dict[str, Any]:
        return {
            "client_id": client_id,
            "instance_name_prefix": self.instance_name_prefix,
            "instance_count": self.count,
            **self.provider_config.model_dump(exclude_none=True),
        }

    def sensitive_values(self) -> list[str]:
        return []


class LocalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: Literal["small", "medium", "large", "bare-metal"] = "small"


class LocalRequest(InstancesRequest):
    cloud_provider: Literal["local"]
    provider_config: LocalConfig = Field(default_factory=LocalConfig)


def require_env(*names: str, cloud: str) -> None:
    """Fail fast, naming every missing variable, before Terraform creates any state."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise PreflightError(f"{cloud} credentials missing: set {', '.join(missing)}")
