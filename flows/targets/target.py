"""What a target is: a Terraform module, the pydantic model of its inputs, a backend
policy, the model of its outputs, and the cloud's checks around Terraform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flows.settings import Settings
from flows.terraform.backends import BackendPolicy

Preflight = Callable[[Any], None]
"""Checks run before Terraform (inputs) -> None; raise ``flows.clouds.errors.PreflightError``
with a message naming the problem."""

SecretReader = Callable[[str, Settings], str]
"""Reads the secret a stack's outputs name (``connection_secret``)."""

Readback = Callable[[Any, dict[str, Any]], dict[str, Any]]
"""After apply: confirm the outputs through the cloud's SDK (inputs, outputs) -> outputs;
raise ``flows.clouds.errors.ReadbackError`` when the cloud disagrees."""


@dataclass(frozen=True)
class Target:
    name: str
    module: str
    inputs: type[BaseModel]
    """A model following ``flows.clouds.base.TargetInputs``."""
    outputs: type[BaseModel]
    backend: BackendPolicy
    description: str
    preflight: Preflight | None = None
    readback: Readback | None = None
    read_secret: SecretReader | None = None
    terraform_env: Callable[[], dict[str, str]] | None = None
    """Extra environment for Terraform (e.g. credentials mapped to TF_VAR_*)."""
    immutable: tuple[str, ...] = ()
    """Input paths (dotted) a change of the client may not touch: changing them would
    rebuild the stack elsewhere or lose its data (a hospital's region, its database name)."""

    def parse_inputs(self, raw: dict[str, Any]) -> Any:
        return self.inputs.model_validate(raw)

    def parse_outputs(self, raw: dict[str, Any]) -> BaseModel:
        return self.outputs.model_validate(raw)
