"""A job: one client, one target, its inputs, and the Terraform that acts on them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flows.clouds.base import StackContext
from flows.settings import Settings
from flows.targets import Target, get_target
from flows.terraform.backends import BackendConfig, claim_pg_workspace
from flows.terraform.binary import find_binary
from flows.terraform.modules import tree_hash
from flows.terraform.redact import Redactor, sensitive_values
from flows.terraform.revisions import UnknownRevision, revision_store
from flows.terraform.runner import LogFn, ProgressFn, Terraform
from flows.terraform.workspace import Workspace


class JobNotReady(ValueError):
    """A run that cannot start from its inputs or settings; the reason says which to fix."""


@dataclass
class Job:
    client_id: str
    target: Target
    inputs: Any
    settings: Settings
    workspace: Workspace
    backend: BackendConfig
    redactor: Redactor = field(default_factory=Redactor)
    previous_holder: str | None = None
    """The flow run that acted on this client's state before (``flows.locks.take_holder``)."""
    run_id: str = ""
    """The run acting on the client (tagged on the instances of the cloud targets)."""
    saved_plan: str = ""
    """A plan a rollout saved for this run (``RolloutHint.plan_name``), applied if still here."""
    revision: str = ""
    """The module revision the run plans and applies (its content hash)."""
    module_dir: Path | None = None
    """That revision's files; None: the module as on disk."""

    @classmethod
    def create(
        cls,
        settings: Settings,
        client_id: str,
        target: str,
        inputs: dict[str, Any],
        *,
        run_id: str = "",
        revision: str = "",
    ) -> Job:
        """``revision``: a stored module revision (the worker only reads the store); empty:
        the module as on disk, for runs queued before revisions existed."""
        try:
            entry = get_target(target)
            if revision:
                module_dir: Path = revision_store(settings).files(entry.module, revision)
            else:
                module_dir = settings.modules_root / entry.module
                revision = tree_hash(module_dir)
            parsed = entry.parse_inputs(inputs)
            backend = entry.backend(settings, client_id)
        except UnknownRevision as exc:
            raise JobNotReady(f"client {client_id} cannot run: {exc}") from None
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise JobNotReady(
                f"the inputs of client {client_id} do not validate as a {target} stack ({fields}); "
                "change them with PATCH /api/clients/{id}"
            ) from None
        except Exception as exc:
            raise JobNotReady(
                f"could not prepare the run of client {client_id} ({target}): {type(exc).__name__}: {exc}"
            ) from exc
        redactor = Redactor([*parsed.sensitive_values(), *backend.secrets])
        return cls(
            client_id=client_id,
            target=entry,
            inputs=parsed,
            settings=settings,
            workspace=Workspace(settings.root, client_id),
            backend=backend,
            redactor=redactor,
            run_id=run_id,
            revision=revision,
            module_dir=module_dir,
        )

    @property
    def context(self) -> StackContext:
        return StackContext(client_id=self.client_id, run_id=self.run_id, settings=self.settings)

    def prepare(self) -> None:
        self.workspace.prepare(
            self.target.module, self.inputs.to_tfvars(self.context), self.backend, self.module_dir
        )

    def secret_variables(self) -> dict[str, str]:
        """The inputs' secret Terraform variables as ``TF_VAR_*``: in the environment of the
        Terraform process only, never in a file; their values are redacted from its output."""
        provide = getattr(self.inputs, "secret_variables", None)
        values: dict[str, Any] = provide(self.context) if provide else {}
        self.redactor.add(sensitive_values(values))
        return {f"TF_VAR_{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}

    def terraform(self, log: LogFn | None = None, progress: ProgressFn | None = None) -> Terraform:
        return Terraform(
            find_binary(self.settings.terraform_bin),
            self.workspace,
            self.workspace.environment(
                {
                    **self.backend.env,
                    **(self.target.terraform_env() if self.target.terraform_env else {}),
                    **self.secret_variables(),
                }
            ),
            redactor=self.redactor,
            log=log,
            lock_timeout=self.settings.lock_timeout,
            backend_config=self.backend.secret_config,
            progress=progress,
            after_init=(lambda: claim_pg_workspace(self.backend)) if self.backend.type == "pg" else None,
        )
