"""What a target is: a Terraform module, the pydantic model of its inputs, a backend
policy, the model of its outputs, and the cloud's checks around Terraform."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


CredentialsCheck = Callable[[Settings], str]
"""What ``tenantform doctor`` asks of a cloud: a short description when this machine could
build on it; raise ``flows.clouds.errors.PreflightError`` naming what is missing."""


@dataclass(frozen=True)
class Credentials:
    """A cloud account a target needs (targets on one cloud share one)."""

    name: str
    check: CredentialsCheck


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
    credentials: Credentials | None = None
    """The cloud account it builds in; None for the embedded localcloud (none needed)."""
    example: Mapping[str, Any] = field(default_factory=dict)
    """A valid inputs document: used by the static tests, the docs and as a starting point."""
    immutable: tuple[str, ...] = ()
    """Input paths (dotted) a change of the client may not touch: changing them would
    rebuild the stack elsewhere or lose its data (a hospital's region, its database name)."""

    def parse_inputs(self, raw: dict[str, Any]) -> Any:
        return self.inputs.model_validate(raw)

    def parse_outputs(self, raw: dict[str, Any]) -> BaseModel:
        return self.outputs.model_validate(raw)
