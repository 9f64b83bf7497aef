"""The target catalogue: every kind of stack, declared once.

A target is a Terraform module, the pydantic model of its inputs, a backend policy and
the model of its outputs. Adding a cloud is adding an entry here, not an ``if``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from flows.settings import Settings
from flows.terraform.backends import BackendPolicy


class TargetInputs(Protocol):
    """What a target's input model provides. It may also define
    ``secret_variables(client_id, settings) -> dict[str, Any]``: Terraform variables that are
    secrets, passed as ``TF_VAR_*`` in the environment (and redacted), never written to
    ``terraform.tfvars.json``."""

    def to_tfvars(self, client_id: str, settings: Settings) -> dict[str, Any]: ...

    def sensitive_values(self) -> list[str]: ...


Preflight = Callable[[Any], None]
"""Checks run before Terraform; raise ``PreflightError`` with a message naming the problem."""

SecretReader = Callable[[str, Settings], str]
"""Reads the secret a stack's outputs name (``connection_secret``)."""

Readback = Callable[[Any, dict[str, Any]], dict[str, Any]]
"""After apply: confirm the outputs through the cloud's SDK (inputs, outputs) -> outputs."""


class PreflightError(Exception):
    """The target cannot work with these inputs or credentials; retrying will not help."""


@dataclass(frozen=True)
class Target:
    name: str
    module: str
    inputs: type[BaseModel]
    outputs: type[BaseModel]
    backend: BackendPolicy
    description: str
    preflight: Preflight | None = None
    readback: Readback | None = None
    read_secret: SecretReader | None = None
    terraform_env: Callable[[], dict[str, str]] | None = None
    """Extra environment for Terraform (e.g. credentials mapped to TF_VAR_*)."""

    def parse_inputs(self, raw: dict[str, Any]) -> Any:
        return self.inputs.model_validate(raw)

    def parse_outputs(self, raw: dict[str, Any]) -> BaseModel:
        return self.outputs.model_validate(raw)


class UnknownTarget(KeyError):
    pass


def all_targets() -> dict[str, Target]:
    from flows.targets.catalogue import TARGETS

    return {t.name: t for t in TARGETS}


def get_target(name: str) -> Target:
    try:
        return all_targets()[name]
    except KeyError:
        raise UnknownTarget(f"unknown target {name!r}; known: {', '.join(all_targets())}") from None


def by_cloud_provider() -> dict[str, Target]:
    """Targets that take the Airflow document's request, keyed by its ``cloud_provider``."""
    found: dict[str, Target] = {}
    for entry in all_targets().values():
        field = entry.inputs.model_fields.get("cloud_provider")
        if field is not None:
            for value in getattr(field.annotation, "__args__", ()):
                found[value] = entry
    return found
