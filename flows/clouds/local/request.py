"""``local``: the Airflow document's request on localcloud, the embedded default."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.clouds.instances import InstancesInputs


class LocalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: Literal["small", "medium", "large", "bare-metal"] = "small"


class LocalInputs(InstancesInputs):
    cloud_provider: Literal["local"]
    provider_config: LocalConfig = Field(default_factory=LocalConfig)
