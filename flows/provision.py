"""The flows: provision (prepare-vars → init → plan to a file → policies → apply that
file → outputs, or plan → policies → approval → policies again → apply the saved plan),
destroy, plan (the policies' verdict reported, nothing applied).

Parameters never carry secrets: credentials reach Terraform through the worker's
environment or blocks, and generated passwords stay inside Terraform state.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel

from flows.contract import (
    FlowParameters,
    Operation,
    ResourceChange,
    RunResult,
    publish,
    publish_plan,
    publish_policies,
)
from flows.jobs import Job
from flows.locks import client_lock, lock_options
from flows.policy import PolicyDenied
from flows.settings import get_settings
from flows.tasks import (
    PolicyCheck,
    policy_check,
    preflight,
    prepare_vars,
    read_outputs,
    retrying,
    terraform_apply,
    terraform_apply_plan,
    terraform_destroy,
    terraform_init,
    terraform_plan,
)
from flows.terraform.events import CommandResult

ACTIONS = frozenset({Operation.provision, Operation.destroy, Operation.plan})
"""The operations these flows carry out; any other is refused before anything runs."""


class UnsupportedOperation(ValueError):
    """An operation these flows do not carry out: an error, never a plan."""


def _require_action(operation: Operation) -> None:
    if operation not in ACTIONS:
        known = ", ".join(sorted(op.value for op in ACTIONS))
        raise UnsupportedOperation(f"operation {operation.value!r} is not one of {known}")


class Decision(BaseModel):
    """What POST /api/runs/{run_id}/approve hands a run suspended for approval."""

    approve: bool


def _run(operation: Operation, params: FlowParameters) -> RunResult:
    _require_action(operation)
    settings = get_settings()
    client_id, target = params.client_id, params.target
    job = Job.create(
        settings, client_id, target, params.inputs, run_id=params.run_id, revision=params.revision
    )
    result = RunResult(
        run_id=params.run_id,
        operation=operation,
        client_id=client_id,
        target=target,
        terraform=str(job.terraform().binary),
        module_version=job.revision,
    )
    check = _policy_check(operation, params)
    if params.rollout is not None:
        job.saved_plan = params.rollout.plan_name(params.inputs, params.revision)
    # No ``tags()`` around the tasks: a tagged task run asks Prefect for its tags'
    # concurrency slots (a write) before it starts; the flow run carries the tags.
    try:
        if operation is Operation.provision and params.approval_required:
            _plan_approve_apply(job, result, check)
        else:
            with client_lock(client_id, **lock_options(settings)) as job.previous_holder:
                _prepare(job, check=operation is not Operation.destroy)
                _act(job, result, check)
    except PolicyDenied as exc:
        # Nothing was applied: the run fails, its result says which policies denied what.
        result.policies, result.message = exc.results, str(exc)
        publish(result)
        publish_policies(result)
        raise
    get_run_logger().info("%s of %s for %s done: %s", operation, target, client_id, result.change_summary)
    publish(result)
    publish_policies(result)
    return result


def _policy_check(operation: Operation, params: FlowParameters) -> PolicyCheck:
    override = params.policy_override
    if override is not None:
        get_run_logger().warning(
            "policy override by %s of %s (denied run %s): %s",
            override.by,
            ", ".join(override.policies),
            override.overrides_run,
            override.reason,
        )
    return PolicyCheck(
        operation=operation.value,
        inputs=params.inputs,
        labels=params.labels,
        overridable=tuple(override.policies) if override else (),
        allowed_actions=tuple(params.rollout.allowed_actions) if params.rollout else None,
    )


def _prepare(job: Job, *, check: bool) -> None:
    retry = retrying(job.settings)
    prepare_vars.with_options(**retry)(job)
    if check:
        preflight.with_options(**retry)(job)
    terraform_init.with_options(**retry)(job)


def _act(job: Job, result: RunResult, check: PolicyCheck) -> None:
    retry = retrying(job.settings)
    if result.operation is Operation.provision:
        applied = terraform_apply.with_options(**retry)(job, check)
        result.change_summary, result.changes = applied.change_summary, ResourceChange.planned_by(applied)
        result.policies = applied.policies
        result.outputs, result.sensitive_outputs = read_outputs.with_options(**retry)(job)
    elif result.operation is Operation.destroy:
        destroyed = terraform_destroy.with_options(**retry)(job)
        result.change_summary, result.changes = destroyed.change_summary, ResourceChange.planned_by(destroyed)
        result.drift = destroyed.drift
        if destroyed.drift:
            # Never "completed successfully" over something it did not do: say what was gone.
            removed = destroyed.change_summary.remove if destroyed.change_summary else 0
            result.message = (
                f"Destroy completed: {removed} destroyed; already gone outside Terraform "
                f"(drift): {', '.join(destroyed.drift)}"
            )
    elif result.operation is Operation.plan:
        plan_file = job.workspace.plan_path(result.run_id)
        try:
            _plan_into(result, terraform_plan.with_options(**retry)(job, out=plan_file))
            try:  # a plan run reports the policies' verdict; it applies nothing either way
                result.policies = policy_check(job, plan_file, check)
            except PolicyDenied as exc:
                result.policies = exc.results
                result.message = f"Plan done; applying it would be refused: {exc}"
        finally:
            plan_file.unlink(missing_ok=True)
    else:
        _require_action(result.operation)  # raises: an unknown operation is never run as a plan
        raise UnsupportedOperation(f"operation {result.operation.value!r} has no action")


def _plan_into(result: RunResult, planned: CommandResult) -> None:
    result.change_summary, result.drift = planned.change_summary, planned.drift
    result.changes = ResourceChange.planned_by(planned)
    result.has_changes = planned.exit_code == 2


def _plan_approve_apply(job: Job, result: RunResult, check: PolicyCheck) -> None:
    """Plan into a file bound to the state it was made against, check it against the
    policies, publish the plan, suspend (the worker slot is freed while a person decides),
    check it again (the policies may have changed meanwhile), then apply exactly that file.
    Resuming re-runs the flow from the top: the saved file says the plan is done."""
    from prefect.flow_runs import suspend_flow_run
    from prefect.runtime import flow_run

    settings, retry = job.settings, retrying(job.settings)
    plan_file = job.workspace.plan_path(result.run_id)
    if not plan_file.exists():
        if flow_run.run_count > 1:
            raise RuntimeError("the saved plan of this run is not on this worker; plan again (retry)")
        with client_lock(job.client_id, **lock_options(settings)) as job.previous_holder:
            _prepare(job, check=True)
            _plan_into(result, terraform_plan.with_options(**retry)(job, out=plan_file))
            if result.has_changes:
                try:
                    result.policies = policy_check(job, plan_file, check)
                except BaseException:
                    plan_file.unlink(missing_ok=True)
                    raise
        if not result.has_changes:
            plan_file.unlink(missing_ok=True)
            result.outputs, result.sensitive_outputs = read_outputs.with_options(**retry)(job)
            return
        publish_plan(result)
    decision = suspend_flow_run(
        wait_for_input=Decision, key="approval", timeout=int(settings.approval_timeout_seconds)
    )
    try:
        if not decision.approve:
            raise RuntimeError("plan rejected")
        with client_lock(job.client_id, **lock_options(settings)) as job.previous_holder:
            result.policies = policy_check(job, plan_file, check)
            applied = terraform_apply_plan.with_options(**retry)(job, plan_file)
            result.change_summary, result.changes = applied.change_summary, ResourceChange.planned_by(applied)
            result.outputs, result.sensitive_outputs = read_outputs.with_options(**retry)(job)
    finally:
        plan_file.unlink(missing_ok=True)


def run_name() -> str:
    """``<operation>-<target>-<client>``, as the Prefect UI lists runs."""
    from prefect.runtime import flow_run

    params = FlowParameters.model_validate(flow_run.parameters["params"])
    return f"{flow_run.flow_name}-{params.target}-{params.client_id}"


@flow(name="provision", flow_run_name=run_name, persist_result=True)
def provision(params: FlowParameters) -> dict[str, Any]:
    """Create or update a client's stack and return its (non-sensitive) outputs."""
    return _run(Operation.provision, params).model_dump(mode="json")


@flow(name="destroy", flow_run_name=run_name, persist_result=True)
def destroy(params: FlowParameters) -> dict[str, Any]:
    """Destroy everything a client's stack holds."""
    return _run(Operation.destroy, params).model_dump(mode="json")


@flow(name="plan", flow_run_name=run_name, persist_result=True)
def plan(params: FlowParameters) -> dict[str, Any]:
    """Drift check: a plan with -detailed-exitcode; ``has_changes`` tells if apply would act."""
    return _run(Operation.plan, params).model_dump(mode="json")
