"""The flows: provision (prepare-vars → init → apply → outputs), destroy, plan.

Parameters never carry secrets: credentials reach Terraform through the worker's
environment or blocks, and generated passwords stay inside Terraform state.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from prefect import flow, get_run_logger, tags
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.jobs import Job
from flows.locks import client_lock
from flows.settings import get_settings
from flows.tasks import (
    preflight,
    prepare_vars,
    read_outputs,
    retrying,
    terraform_apply,
    terraform_destroy,
    terraform_init,
    terraform_plan,
)
from flows.terraform.events import ChangeSummary

Operation = Literal["provision", "destroy", "plan", "create-tables"]


class RunResult(BaseModel):
    """What the gateway shows for a finished run; persisted and published as an artifact."""

    operation: Operation
    client_id: str
    target: str
    terraform: str
    outputs: dict[str, Any] = Field(default_factory=dict)
    sensitive_outputs: list[str] = Field(default_factory=list)
    change_summary: ChangeSummary | None = None
    drift: list[str] = Field(default_factory=list)
    has_changes: bool = False


def artifact_key(operation: Operation, client_id: str) -> str:
    return f"{operation}-{client_id}".lower()


_FENCE_OPEN, _FENCE_CLOSE = "```json\n", "\n```"


def publish(result: RunResult) -> None:
    """An artifact lives on the Prefect server, so a gateway on another machine can read
    it without access to result storage. Markdown so the Prefect UI shows it too."""
    body = json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True)
    create_markdown_artifact(
        key=artifact_key(result.operation, result.client_id),
        markdown=f"{_FENCE_OPEN}{body}{_FENCE_CLOSE}",
        description=f"tenantform {result.operation} of {result.target} for {result.client_id}",
    )


def read_published(markdown: str) -> dict[str, Any]:
    """The inverse of ``publish``."""
    body = markdown.removeprefix(_FENCE_OPEN).removesuffix(_FENCE_CLOSE)
    return json.loads(body)  # type: ignore[no-any-return]


def _run(operation: Operation, client_id: str, target: str, inputs: dict[str, Any]) -> RunResult:
    settings = get_settings()
    job = Job.create(settings, client_id, target, inputs)
    logger = get_run_logger()
    with tags(f"client:{client_id}", f"target:{target}"), client_lock(client_id, settings.fleet_concurrency):
        retry = retrying(settings)
        prepare_vars.with_options(**retry)(job)
        if operation != "destroy":
            preflight.with_options(**retry)(job)
        terraform_init.with_options(**retry)(job)
        result = RunResult(
            operation=operation,
            client_id=client_id,
            target=target,
            terraform=str(job.terraform().binary),
        )
        if operation == "provision":
            applied = terraform_apply.with_options(**retry)(job)
            result.change_summary = applied.change_summary
            result.outputs, result.sensitive_outputs = read_outputs.with_options(**retry)(job)
        elif operation == "destroy":
            result.change_summary = terraform_destroy.with_options(**retry)(job).change_summary
        else:
            planned = terraform_plan.with_options(**retry)(job)
            result.change_summary, result.drift = planned.change_summary, planned.drift
            result.has_changes = planned.exit_code == 2
    logger.info("%s of %s for %s done: %s", operation, target, client_id, result.change_summary)
    publish(result)
    return result


@flow(name="provision", flow_run_name="provision-{target}-{client_id}", persist_result=True)
def provision(client_id: str, target: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Create or update a client's stack and return its (non-sensitive) outputs."""
    return _run("provision", client_id, target, inputs).model_dump(mode="json")


@flow(name="destroy", flow_run_name="destroy-{target}-{client_id}", persist_result=True)
def destroy(client_id: str, target: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Destroy everything a client's stack holds."""
    return _run("destroy", client_id, target, inputs).model_dump(mode="json")


@flow(name="plan", flow_run_name="plan-{target}-{client_id}", persist_result=True)
def plan(client_id: str, target: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Drift check: a plan with -detailed-exitcode; ``has_changes`` tells if apply would act."""
    return _run("plan", client_id, target, inputs).model_dump(mode="json")
