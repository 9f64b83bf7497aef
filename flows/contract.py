"""The contract between the gateway and the flows: which operations exist, what a flow
run is given, and what it publishes when it ends (results, plans, sweeps). The gateway
also reads the catalogue, settings and workflows of ``flows``; what crosses Prefect
between the two is declared here, once, so a parameter or a result field has one home."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from flows.terraform.events import ApplyProgress, ChangeSummary, CommandResult


class Operation(enum.StrEnum):
    """What a run does to one client. Each has one deployment in ``prefect.yaml``
    (same name), read by ``flows.workflows``."""

    provision = "provision"
    destroy = "destroy"
    plan = "plan"
    create_tables = "create-tables"
    reconcile = "reconcile"
    """A sweep: plans many clients inside one flow run (``flows.reconcile``)."""
    reconcile_shard = "reconcile-shard"
    """One shard of a sweep too large for one flow run: a flow run of its own (``flows.shards``)."""
    rollout = "rollout"
    """A module revision carried across a target's clients in waves (``flows.rollouts``)."""


class PolicyLevel(enum.StrEnum):
    """What a policy's denial does (Sentinel's three levels)."""

    advisory = "advisory"
    """Its denials are warnings: the apply goes on."""
    soft_mandatory = "soft-mandatory"
    """Blocks; a key with the ``policy:override`` scope may override it for one run."""
    hard_mandatory = "hard-mandatory"
    """Blocks; no override."""


class PolicyOutcome(enum.StrEnum):
    passed = "pass"
    warn = "warn"
    deny = "deny"
    overridden = "overridden"


class PolicyResult(BaseModel):
    """One policy on one plan."""

    policy: str = Field(description="The policy's Rego package, e.g. tenantform.instance_cap.")
    level: PolicyLevel
    outcome: PolicyOutcome
    messages: list[str] = Field(default_factory=list, description="Its deny and warn messages.")
    file: str = Field("", description="Where the policy is written.")


class PolicyOverride(BaseModel):
    """A soft-mandatory denial overridden for one run, by whom and why (recorded)."""

    by: str = Field(description="The API key (key:<id>) that overrode it.")
    reason: str
    policies: list[str] = Field(description="The soft-mandatory policies it overrides, and only those.")
    overrides_run: str = Field(description="The denied run this run repeats.")


class RolloutHint(BaseModel):
    """What a rollout tells the upgrade run of one of its clients."""

    rollout_id: str
    allowed_actions: list[str] = Field(
        description="Plan actions the run may apply (create, update, delete, replace); a plan with "
        "another fails the run with nothing applied."
    )

    def plan_name(self, inputs: dict[str, Any], revision: str) -> str:
        """The plan the rollout saved for these inputs and revision: the run applies it when
        its worker holds it and Terraform finds it current, so the plan applied is the plan the
        rollout checked, and it is not made twice. Other inputs or revision: another name."""
        digest = hashlib.sha256(json.dumps([inputs, revision], sort_keys=True).encode()).hexdigest()
        return f"rollout-{self.rollout_id}-{digest[:12]}"


class FlowParameters(BaseModel):
    """The one parameter every client flow takes. Never holds a secret: credentials reach
    Terraform through the worker's environment, generated passwords stay in state."""

    run_id: str = Field(description="The registry's run (the APIs' request_id).")
    client_id: str
    target: str
    inputs: dict[str, Any]
    approval_required: bool = Field(
        False, description="Plan, publish the plan, and wait for approval before applying it."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="The client's labels, for policies.")
    revision: str = Field(
        "",
        description="The module revision the run plans and applies (flows.terraform.revisions); "
        "empty: the target's module as on disk (runs queued before revisions existed).",
    )
    policy_override: PolicyOverride | None = Field(
        None, description="Soft-mandatory policies this run may break (POST /api/runs/{id}/override)."
    )
    rollout: RolloutHint | None = Field(None, description="Set on a client's upgrade run by a rollout.")

    def as_prefect_parameters(self) -> dict[str, Any]:
        return {"params": self.model_dump(mode="json")}


class ResourceChange(BaseModel):
    address: str
    action: str = Field(description="create, update, delete, replace, read or noop.")

    @classmethod
    def planned_by(cls, command: CommandResult) -> list[ResourceChange]:
        """The changes a Terraform plan, apply or destroy planned, one per resource."""
        pairs = (p.partition(" ") for p in command.planned)
        return [cls(action=action, address=address) for action, _, address in pairs]


class RunResult(BaseModel):
    """What the gateway shows for a finished run; published as an artifact."""

    run_id: str
    operation: Operation
    client_id: str
    target: str
    terraform: str
    outputs: dict[str, Any] = Field(default_factory=dict)
    sensitive_outputs: list[str] = Field(default_factory=list)
    change_summary: ChangeSummary | None = None
    changes: list[ResourceChange] = Field(
        default_factory=list, description="Resources the plan or apply acted on or would act on."
    )
    drift: list[str] = Field(default_factory=list, description="Resources changed outside Terraform.")
    has_changes: bool = False
    module_version: str = Field("", description="The module revision the run used (its content hash).")
    message: str = Field("", description="What the run did, when a fixed sentence would hide it.")
    policies: list[PolicyResult] = Field(
        default_factory=list, description="Each policy's verdict on the run's plan (empty: no plan checked)."
    )


class DriftStatus(enum.StrEnum):
    in_sync = "in_sync"
    drifted = "drifted"
    unknown = "unknown"
    """Never checked, or the check failed (the check says why)."""


class Remediation(enum.StrEnum):
    report = "report"
    heal = "heal"
    """Apply a plan that only creates or updates in place; anything that destroys or
    replaces is reported, never applied by reconciliation."""


class SweepTarget(BaseModel):
    """One client a sweep checks."""

    params: FlowParameters
    remediation: Remediation = Remediation.report


class DriftCheck(BaseModel):
    client_id: str
    status: DriftStatus
    checked_at: datetime
    resources: list[ResourceChange] = Field(default_factory=list)
    action: str = Field(description="none, healed, reported, skipped or failed.")
    reason: str = ""
    outputs: dict[str, Any] | None = Field(None, description="The outputs after healing.")
    module_version: str = ""


class SweepResult(BaseModel):
    checks: list[DriftCheck] = Field(default_factory=list)


SWEEP_KEY = "reconcile-sweep"


def publish_sweep(sweep: SweepResult) -> None:
    """A table for people (Prefect UI) and the same checks as JSON for the gateway."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact(
        key=f"{SWEEP_KEY}-table",
        table=[
            {
                "client": c.client_id,
                "drift": c.status.value,
                "resources": ", ".join(f"{r.action} {r.address}" for r in c.resources) or "-",
                "action": c.action,
                "reason": c.reason or "-",
            }
            for c in sweep.checks
        ],
        description=f"reconciliation sweep of {len(sweep.checks)} client(s)",
    )
    body = sweep.model_dump_json(indent=2)
    create_markdown_artifact(
        key=SWEEP_KEY, markdown=f"{_FENCE_OPEN}{body}{_FENCE_CLOSE}", description="sweep result (JSON)"
    )


def sweep_markdown(sweep: SweepResult) -> str:
    """The checks as fenced JSON (``read_sweep`` reads them back)."""
    return f"{_FENCE_OPEN}{sweep.model_dump_json(indent=2)}{_FENCE_CLOSE}"


def read_sweep(markdown: str) -> SweepResult:
    return SweepResult.model_validate_json(markdown.removeprefix(_FENCE_OPEN).removesuffix(_FENCE_CLOSE))


def result_key(operation: Operation, client_id: str) -> str:
    """One artifact key per client and operation, so the Prefect UI shows its history."""
    return f"{operation.value}-{client_id}".lower()


_FENCE_OPEN, _FENCE_CLOSE = "```json\n", "\n```"


def publish(result: RunResult) -> None:
    """An artifact lives on the Prefect server, so a gateway on another machine reads it
    without access to result storage. Markdown: a table for people in the Prefect UI,
    then the result as JSON for the gateway (``read_published``)."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        key=result_key(result.operation, result.client_id),
        markdown=result_markdown(result),
        description=f"tenantform {result.operation.value} of {result.target} for {result.client_id}",
    )


def result_markdown(result: RunResult) -> str:
    """Tables of what the run did (counts, outputs, resources, drift), then the JSON.
    Outputs are the non-sensitive ones only: sensitive outputs are listed by name."""
    summary = result.change_summary or ChangeSummary()
    parts = [
        f"### {result.operation.value} of `{result.target}` for `{result.client_id}`",
        *([_cell(result.message)] if result.message else []),
        _table(
            ("Terraform", "added", "changed", "destroyed"),
            [(summary.operation, str(summary.add), str(summary.change), str(summary.remove))],
        ),
    ]
    outputs = [(_code(k), _code(_shown(v))) for k, v in sorted(result.outputs.items())]
    outputs += [(_code(k), "*sensitive, not shown*") for k in result.sensitive_outputs]
    if outputs:
        parts.append(_table(("Output", "Value"), outputs))
    if result.changes:
        parts.append(_table(("Resource", "Action"), [(_code(c.address), c.action) for c in result.changes]))
    if result.policies:
        parts.append(
            _table(
                ("Policy", "Level", "Result", "Messages"),
                [
                    (_code(p.policy), p.level.value, p.outcome.value, " / ".join(p.messages) or "-")
                    for p in result.policies
                ],
            )
        )
    drift = [(_code(address),) for address in result.drift]
    parts.append(_table(("Drift: changed or removed outside Terraform",), drift) if drift else "Drift: none.")
    body = json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True)
    parts.append(f"Machine-readable (the gateway reads this block):\n\n{_FENCE_OPEN}{body}{_FENCE_CLOSE}")
    return "\n\n".join(parts)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """One table cell or line: a pipe or a line break would end it early."""
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def policy_key(client_id: str) -> str:
    return f"policy-{client_id}".lower()


def publish_policies(result: RunResult) -> None:
    """The policies' verdicts on the run's plan, as a table in the Prefect UI."""
    if not result.policies:
        return
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        key=policy_key(result.client_id),
        table=[
            {
                "policy": p.policy,
                "level": p.level.value,
                "result": p.outcome.value,
                "messages": " / ".join(p.messages) or "-",
                "file": p.file,
            }
            for p in result.policies
        ],
        description=f"policies on the {result.operation.value} plan of {result.client_id}"
        f" (run {result.run_id})",
    )


def plan_key(client_id: str) -> str:
    return f"plan-{client_id}".lower()


def publish_plan(result: RunResult) -> None:
    """The plan a run waits to have approved, for the person deciding (Prefect UI, API)."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        key=plan_key(result.client_id),
        markdown=f"Waiting for approval: `POST /api/runs/{result.run_id}/approve` or `/reject`.\n\n"
        + result_markdown(result),
        description=f"plan of {result.target} for {result.client_id}, waiting for approval",
    )


def read_published(markdown: str) -> RunResult:
    """The inverse of ``publish``: the last JSON block (the whole artifact before tables)."""
    start = markdown.rfind(_FENCE_OPEN)
    body = markdown[start + len(_FENCE_OPEN) :] if start >= 0 else markdown
    return RunResult.model_validate_json(body.removesuffix(_FENCE_CLOSE))


def progress_key(client_id: str) -> str:
    """One progress artifact per Terraform apply, under one key per client (its history in
    the Prefect UI); the gateway finds a run's newest by its flow run id."""
    return f"progress-{client_id}".lower()


_PROGRESS = re.compile(r"^terraform (?P<command>[a-z]+): (?P<done>\d+) of (?P<planned>\d+) resources done")


def describe_progress(progress: ApplyProgress) -> str:
    """A progress artifact holds only a percentage: the counts travel in its description,
    written for people and read back by ``read_progress``."""
    return f"terraform {progress.command}: {progress.done} of {progress.planned} resources done"


def read_progress(description: str | None) -> ApplyProgress | None:
    match = _PROGRESS.match(description or "")
    if match is None:
        return None
    return ApplyProgress(command=match["command"], done=int(match["done"]), planned=int(match["planned"]))
