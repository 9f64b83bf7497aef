"""Prefect tasks around one ``Job``. Each retries only when the error says a retry can
help (a lock held elsewhere, a transient cloud error); Terraform tasks are never cached,
so a flow retry re-runs Terraform instead of marking it ``Cached``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from pydantic import Field

from flows.clouds.errors import PreflightError, ReadbackError
from flows.contract import PolicyResult
from flows.jobs import Job
from flows.locks import forget_holder, holder_gone
from flows.policy import PolicyDenied, PolicyError, PolicySet, denied, plan_document
from flows.progress import ProgressArtifact
from flows.settings import Settings
from flows.terraform.errors import StalePlanError, StateLockedError, TerraformError
from flows.terraform.events import CommandResult
from flows.terraform.redact import sensitive_values
from flows.terraform.runner import Terraform


def retry_only_when_useful(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except TerraformError as exc:
        return exc.retryable
    except (PreflightError, ReadbackError, PolicyDenied, PolicyError, PlanNotAllowed):
        return False
    except Exception:
        return True
    return False


TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "persist_result": False,
    "retry_condition_fn": retry_only_when_useful,
}


def retrying(settings: Settings) -> dict[str, Any]:
    """``with_options`` for a flow's tasks: the retry settings are read per run, not at import."""
    return {"retries": settings.task_retries, "retry_delay_seconds": settings.task_retry_delay_seconds}


@task(name="prepare-vars", **TASK_OPTIONS)
def prepare_vars(job: Job) -> None:
    job.prepare()
    binary = job.terraform().binary
    get_run_logger().info(
        "workspace %s ready for target %s with %s", job.workspace.path, job.target.name, binary
    )


@task(name="preflight", **TASK_OPTIONS)
def preflight(job: Job) -> None:
    if job.target.preflight is not None:
        job.target.preflight(job.inputs)


@task(name="terraform-init", **TASK_OPTIONS)
def terraform_init(job: Job) -> CommandResult:
    return job.terraform(get_run_logger().info).init()


def unlocking(
    job: Job, command: Callable[[Terraform], CommandResult], *, applies: bool = False
) -> CommandResult:
    """Run a locking command; a state lock left by the flow run that acted on this client
    before, now ended in Prefect, is released and the command run again. Any other holder
    is waited on (``-lock-timeout``) and retried: never unlocked on a guess. A command
    that ``applies`` keeps a progress artifact of resources done of planned."""
    logger = get_run_logger()
    with ProgressArtifact(job.client_id) as progress:
        terraform = job.terraform(logger.info, progress=progress if applies else None)
        try:
            return command(terraform)
        except StateLockedError as exc:
            if not exc.lock_id or not holder_gone(job.previous_holder):
                raise
            logger.warning(
                "state lock %s was left by flow run %s, which has ended: releasing it",
                exc.lock_id,
                job.previous_holder,
            )
            terraform.force_unlock(exc.lock_id)
            return command(terraform)


@dataclass(frozen=True)
class PolicyCheck:
    """What the policies are told besides the plan, and which denials an override lifts."""

    operation: str
    inputs: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    overridable: tuple[str, ...] = ()
    allowed_actions: tuple[str, ...] | None = None
    """Plan actions the run may apply (a rollout's upgrade); None: any."""


class PlanNotAllowed(RuntimeError):
    """The plan has an action the run may not apply (a rollout allows create and update by
    default): nothing was applied, and a retry would plan the same."""


_ACTIONS = {("create",): "create", ("update",): "update", ("delete",): "delete"}


def plan_actions(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(action, address) of each resource a plan (``terraform show -json``) changes; a delete
    and create of one resource is a replace."""
    found = []
    for change in plan.get("resource_changes") or []:
        actions = tuple(change.get("change", {}).get("actions") or ())
        action = _ACTIONS.get(actions, "replace" if set(actions) == {"create", "delete"} else "")
        if action:
            found.append((action, str(change.get("address", ""))))
    return found


def require_allowed(plan: dict[str, Any], allowed: tuple[str, ...] | None) -> None:
    if allowed is None:
        return
    forbidden = [f"{action} {address}" for action, address in plan_actions(plan) if action not in allowed]
    if forbidden:
        may = " and ".join(allowed) or "change nothing"
        changes = ", ".join(forbidden)
        raise PlanNotAllowed(f"the plan would {changes}; this run may only {may}: nothing was applied")


def check_plan(job: Job, plan_file: Path, check: PolicyCheck) -> list[PolicyResult]:
    """Every policy (built-in, then ``POLICY_DIR``, read afresh) on the saved plan; raises
    ``PolicyDenied`` when a blocking one denies it, ``PolicyError`` when one is broken."""
    logger = get_run_logger()
    plan = job.terraform().show_json(plan_file)
    require_allowed(plan, check.allowed_actions)
    hidden = {name.removeprefix("TF_VAR_") for name in job.secret_variables()}
    document = plan_document(
        plan,
        client_id=job.client_id,
        target=job.target.name,
        inputs=check.inputs,
        labels=check.labels,
        operation=check.operation,
        hidden_variables=hidden,
    )
    results = PolicySet.load(job.settings.policy_dirs).evaluate(document, check.overridable)
    for result in results:
        result.messages = [job.redactor(m) for m in result.messages]
        if result.outcome.value != "pass":
            logger.warning(
                "policy %s (%s): %s: %s",
                result.policy,
                result.level.value,
                result.outcome.value,
                " / ".join(result.messages),
            )
    if denied(results):
        raise PolicyDenied(results)
    logger.info("policies: %d checked, none blocks the plan", len(results))
    return results


class CheckedApply(CommandResult):
    """An apply of a plan the policies passed, with their verdicts."""

    policies: list[PolicyResult] = Field(default_factory=list)


@task(name="terraform-apply", **TASK_OPTIONS)
def terraform_apply(job: Job, check: PolicyCheck) -> CheckedApply:
    """Plan into a file (or take the plan a rollout saved for this run, when this worker
    holds it), check it against the policies, apply exactly that file. A saved plan the
    state has moved past is planned afresh; a retry plans and checks again: the plan
    applied is always the plan checked."""
    plan_file = job.workspace.plan_path(job.run_id or "apply")
    try:
        reused = _take_saved_plan(job, plan_file)
        if not reused:
            unlocking(job, lambda tf: tf.plan(out=plan_file))
        policies = check_plan(job, plan_file, check)
        try:
            applied = unlocking(job, lambda tf: tf.apply_plan(plan_file), applies=True)
        except StalePlanError:
            if not reused:
                raise
            get_run_logger().info(
                "the rollout's saved plan is stale (the state moved since it): planning again"
            )
            unlocking(job, lambda tf: tf.plan(out=plan_file))
            policies = check_plan(job, plan_file, check)
            applied = unlocking(job, lambda tf: tf.apply_plan(plan_file), applies=True)
    finally:
        plan_file.unlink(missing_ok=True)
    return CheckedApply(**applied.model_dump(), policies=policies)


def _take_saved_plan(job: Job, plan_file: Path) -> bool:
    if not job.saved_plan:
        return False
    saved = job.workspace.plan_path(job.saved_plan)
    try:
        os.replace(saved, plan_file)
    except FileNotFoundError:
        return False  # planned on another worker, or already taken: plan here
    get_run_logger().info("applying the plan the rollout made and checked (%s)", job.saved_plan)
    return True


@task(name="policy-check", **TASK_OPTIONS)
def policy_check(job: Job, plan_file: Path, check: PolicyCheck) -> list[PolicyResult]:
    return check_plan(job, plan_file, check)


@task(name="terraform-plan", **TASK_OPTIONS)
def terraform_plan(job: Job, out: Path | None = None) -> CommandResult:
    return unlocking(job, lambda tf: tf.plan(out=out))


@task(name="terraform-apply-plan", **TASK_OPTIONS)
def terraform_apply_plan(job: Job, plan_file: Path) -> CommandResult:
    return unlocking(job, lambda tf: tf.apply_plan(plan_file), applies=True)


@task(name="terraform-destroy", **TASK_OPTIONS)
def terraform_destroy(job: Job) -> CommandResult:
    result = unlocking(job, lambda tf: tf.destroy(), applies=True)
    forget_holder(job.client_id)
    return result


@task(name="read-outputs", **TASK_OPTIONS)
def read_outputs(job: Job) -> tuple[dict[str, Any], list[str]]:
    """Non-sensitive outputs, validated by the target's model, and the names of the rest."""
    outputs = job.terraform().output()
    public = {k: v.value for k, v in outputs.items() if not v.sensitive}
    hidden = sorted(k for k, v in outputs.items() if v.sensitive)
    if job.target.readback is not None:
        public = job.target.readback(job.inputs, public)
    job.target.parse_outputs(public)
    job.redactor.add(s for k in hidden for s in sensitive_values(outputs[k].value))
    return public, hidden
