"""What every target's inputs share: the context they are turned into Terraform
variables in, the protocol they follow, and the credentials check of the SDK clouds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from flows.clouds.errors import PreflightError
from flows.settings import Settings


@dataclass(frozen=True)
class StackContext:
    """One run acting on one client's stack."""

    client_id: str
    run_id: str
    settings: Settings


class TargetInputs(Protocol):
    """What a target's input model provides. It may also define
    ``secret_variables(ctx: StackContext) -> dict[str, Any]``: Terraform variables that are
    secrets, passed as ``TF_VAR_*`` in the environment (and redacted), never written to
    ``terraform.tfvars.json``."""

    def to_tfvars(self, ctx: StackContext) -> dict[str, Any]: ...

    def sensitive_values(self) -> list[str]: ...


def require_env(*names: str, cloud: str) -> None:
    """Fail fast, naming every missing variable, before Terraform creates any state."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise PreflightError(f"{cloud} credentials missing: set {', '.join(missing)}")
