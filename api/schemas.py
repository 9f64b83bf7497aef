"""Request and response shapes of the gateway. Request bodies of the targets are the
targets' own input models (``flows.targets``); nothing here redeclares them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, create_model

from api.clients.labels import Labels
from api.registry.models import ApiKey, Approval, Client, DriftRecord, Run, RunStatus, Scope, Sweep
from flows.clouds.hospital import HospitalInputs
from flows.clouds.instances import InstanceOutput
from flows.contract import PolicyOverride, PolicyResult, Remediation, ResourceChange, SweepTarget
from flows.targets import by_cloud_provider
from flows.terraform.events import ApplyProgress
from flows.terraform.revisions import Revision


def with_labels(model: type[BaseModel]) -> type[BaseModel]:
    """A target's own input model, plus the client's ``labels`` (kept out of its inputs)."""
    return create_model(
        model.__name__,
        __base__=model,
        __module__=model.__module__,
        __doc__=model.__doc__,
        labels=(Labels, Field(default_factory=dict)),
    )


HospitalRequest: Any = with_labels(HospitalInputs)


def _provision_request() -> Any:
    """The Airflow request: a union of the catalogue's instance targets, told apart by
    ``cloud_provider`` (so an unknown provider is a 422 naming that field)."""
    models = tuple(with_labels(m) for m in dict.fromkeys(t.inputs for t in by_cloud_provider().values()))
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="cloud_provider")]  # noqa: UP007


ProvisionRequest: Any = _provision_request()


def _aware(value: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_aware)]

AirflowStatus = Literal["in_progress", "completed", "failed"]


def airflow_status(status: str) -> AirflowStatus:
    if status == RunStatus.completed:
        return "completed"
    if status in (RunStatus.failed, RunStatus.cancelled):
        return "failed"
    return "in_progress"


class ProvisionResponse(BaseModel):
    """The Airflow document's response, for both POST /provision and GET /status."""

    request_id: str
    status: AirflowStatus
    message: str
    instances: list[InstanceOutput] | None = None

    @classmethod
    def of(cls, run: Run) -> ProvisionResponse:
        status = airflow_status(run.status)
        instances = None
        if status == "completed" and run.result:
            instances = [InstanceOutput.model_validate(i) for i in run.result["outputs"].get("instances", [])]
        message = run.message
        if status == "in_progress":
            message = (
                "Request received and provisioning flow triggered"
                if run.status == RunStatus.in_progress
                else f"Request received; {run.message}"
            )
        return cls(request_id=run.id, status=status, message=message, instances=instances)


class RunSummary(BaseModel):
    request_id: str
    operation: str
    status: str
    message: str
    started_by: str | None = Field(None, description="The key that asked: key:<id>, bootstrap, basic:<user>.")
    flow_run_id: str | None
    revision: str | None = Field(None, description="The module revision the run plans and applies.")
    created_at: Timestamp
    finished_at: Timestamp | None

    @classmethod
    def of(cls, run: Run) -> RunSummary:
        return cls(
            request_id=run.id,
            operation=run.operation,
            status=run.status,
            message=run.message,
            started_by=run.started_by,
            flow_run_id=run.flow_run_id,
            revision=run.revision,
            created_at=run.created_at,
            finished_at=run.finished_at,
        )


class DriftView(BaseModel):
    status: str = Field(description="in_sync, drifted, or unknown (never checked, or the check failed).")
    checked_at: Timestamp | None
    reason: str
    resources: list[ResourceChange]

    @classmethod
    def of(cls, client: Client) -> DriftView:
        return cls(
            status=client.drift_status,
            checked_at=client.drift_checked_at,
            reason=client.drift_reason,
            resources=[ResourceChange.model_validate(r) for r in client.drift_resources or []],
        )


class DriftCheckView(BaseModel):
    checked_at: Timestamp
    status: str
    action: str = Field(description="none, healed, reported, skipped or failed.")
    reason: str
    resources: list[ResourceChange]
    sweep_flow_run_id: str

    @classmethod
    def of(cls, record: DriftRecord) -> DriftCheckView:
        return cls(
            checked_at=record.checked_at,
            status=record.status,
            action=record.action,
            reason=record.reason,
            resources=[ResourceChange.model_validate(r) for r in record.resources],
            sweep_flow_run_id=record.flow_run_id,
        )


class DriftReport(DriftView):
    client_uuid: str
    remediation: str
    history: list[DriftCheckView]


class SweepView(BaseModel):
    sweep_id: str
    status: str = Field(description="accepted, dispatched (to Prefect) or failed (never started).")
    clients: int = Field(description="How many clients matched when it was asked.")
    flow_run_id: str | None = Field(description="The reconcile flow run, once dispatched.")
    message: str
    created_at: datetime
    dispatched_at: datetime | None

    @classmethod
    def of(cls, sweep: Sweep) -> SweepView:
        return cls(
            sweep_id=sweep.id,
            status=sweep.status,
            clients=sweep.clients,
            flow_run_id=sweep.flow_run_id,
            message=sweep.message,
            created_at=_aware(sweep.created_at),
            dispatched_at=_aware(sweep.dispatched_at) if sweep.dispatched_at else None,
        )


class FleetPage(BaseModel):
    total: int
    clients: list[SweepTarget]


class ClientView(BaseModel):
    client_uuid: str
    kind: str
    target: str
    name: str | None
    parent_uuid: str | None
    status: str
    message: str
    inputs: dict[str, Any] = Field(description="The client's inputs as last accepted (never secrets).")
    approval: str = Field(description="auto: provisions apply what they plan; required: they wait.")
    remediation: str = Field(description="What a reconciliation sweep does with drift: report or heal.")
    callback_url: str | None = Field(None, description="Told of every run's end.")
    drift: DriftView
    module_version: str | None = Field(None, description="Hash of the module that built the state.")
    revision: str | None = Field(
        None,
        description="The module revision the client is pinned to (its runs use it; an upgrade moves "
        "it); null until its first provision completes.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="The client's labels.")
    created_at: Timestamp
    updated_at: Timestamp
    latest_run: RunSummary | None = None

    @classmethod
    def of(cls, client: Client, latest: Run | None = None) -> ClientView:
        return cls(
            inputs=client.inputs,
            approval=client.approval,
            remediation=client.remediation,
            callback_url=client.callback_url,
            drift=DriftView.of(client),
            module_version=client.module_version,
            revision=client.revision,
            labels=client.labels or {},
            client_uuid=client.id,
            kind=client.kind,
            target=client.target,
            name=client.name,
            parent_uuid=client.parent_id,
            status=client.status,
            message=client.status_message,
            created_at=client.created_at,
            updated_at=client.updated_at,
            latest_run=RunSummary.of(latest) if latest else None,
        )


class ClientList(BaseModel):
    total: int
    limit: int
    offset: int
    clients: list[ClientView]


class RunList(BaseModel):
    total: int
    limit: int
    offset: int
    runs: list[RunSummary]


class ClientSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approval: Approval | None = Field(None, description="required: every provision waits for approval.")
    remediation: Remediation | None = Field(
        None, description="heal: a sweep applies a plan that only creates or updates in place."
    )
    callback_url: HttpUrl | None = Field(
        None, description="Told of every run's end (HMAC-signed POST); null removes it."
    )


class OutputsView(BaseModel):
    client_uuid: str
    status: str
    outputs: dict[str, Any]
    sensitive_outputs: list[str] = Field(
        default_factory=list, description="Names of outputs withheld because Terraform marks them sensitive."
    )


class TaskView(BaseModel):
    name: str
    state: str | None
    start_time: Timestamp | None
    end_time: Timestamp | None
    message: str


class ProgressView(BaseModel):
    command: str = Field(description="The Terraform command applying: apply or destroy.")
    planned: int = Field(description="Resources its plan changes.")
    done: int = Field(description="Of those, the ones Terraform has finished.")
    percent: float

    @classmethod
    def of(cls, progress: ApplyProgress) -> ProgressView:
        return cls(
            command=progress.command, planned=progress.planned, done=progress.done, percent=progress.percent
        )


class RunView(RunSummary):
    client_uuid: str
    result: dict[str, Any] | None
    tasks: list[TaskView] | None = None
    logs: list[str] | None = None
    details_missing: str | None = Field(
        None,
        description="Why tasks, progress and logs are absent when Prefect did not answer in time; "
        "the registry's fields are still current.",
    )
    progress: ProgressView | None = Field(
        None,
        description="Resources done of planned of the run's latest Terraform apply or destroy "
        "(updated every few seconds while it runs); null until Terraform applies anything.",
    )

    policies: list[PolicyResult] = Field(
        default_factory=list,
        description="Each policy's verdict on the run's plan (pass, warn, deny, overridden) with "
        "its messages; empty until the run has checked a plan.",
    )
    policy_override: PolicyOverride | None = Field(
        None, description="The override this run carries (POST /api/runs/{run_id}/override)."
    )

    @classmethod
    def of(cls, run: Run) -> RunView:
        return cls(
            **RunSummary.of(run).model_dump(),
            client_uuid=run.client_id,
            result=run.result,
            policies=(run.result or {}).get("policies", []),
            policy_override=(run.parameters or {}).get("policy_override"),
        )


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=3, max_length=500, description="Why the policies may be broken this once (recorded)."
    )


class Accepted(BaseModel):
    request_id: str
    client_uuid: str
    operation: str
    status: str
    message: str

    @classmethod
    def of(cls, run: Run, created: bool) -> Accepted:
        message = f"{run.operation} accepted" if created else f"a {run.operation} is already under way"
        return cls(
            request_id=run.id,
            client_uuid=run.client_id,
            operation=run.operation,
            status=run.status,
            message=message,
        )

    @classmethod
    def unchanged(
        cls, client_id: str, latest: Run | None, message: str = "the patch changes nothing; no run started"
    ) -> Accepted:
        return cls(
            request_id=latest.id if latest else "",
            client_uuid=client_id,
            operation=latest.operation if latest else "",
            status=latest.status if latest else "",
            message=message,
        )


class HospitalAccepted(BaseModel):
    client_uuid: str
    client_name: str | None
    parent_uuid: str | None
    status: str
    request_id: str
    message: str

    @classmethod
    def of(cls, client: Client, run: Run, created: bool) -> HospitalAccepted:
        return cls(
            client_uuid=client.id,
            client_name=client.name,
            parent_uuid=client.parent_id,
            status=client.status,
            request_id=run.id,
            message="registration accepted; provisioning through a flow run"
            if created
            else "already registered with this body",
        )


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["ci-pipeline"])
    scope: Scope = Field(
        description="read, write (includes read), policy:override (write, and overriding a "
        "soft-mandatory policy for one run) or admin (includes all)."
    )


class KeyView(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scope: str
    created_at: Timestamp
    revoked_at: Timestamp | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyView:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            scope=key.scope,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class KeyCreated(KeyView):
    key: str = Field(description="Shown once: store it now.")


class UpgradeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    revision: str = Field(
        pattern=r"^[0-9a-f]{16}$",
        description="A module revision of the client's target (GET /api/targets/{target}/revisions).",
        examples=["3f2a9c4b7d1e5f60"],
    )


class RevisionView(BaseModel):
    id: str = Field(description="Content hash of the module's files.")
    label: str = Field(description="What the gateway that recorded it was: git describe or version.")
    first_seen: Timestamp

    @classmethod
    def of(cls, revision: Revision) -> RevisionView:
        return cls(id=revision.id, label=revision.label, first_seen=revision.first_seen)


class TargetView(BaseModel):
    name: str
    description: str
    module: str
    newest_revision: RevisionView = Field(description="The module as on disk: what new clients get.")
    clients: int = Field(description="Its clients not destroyed.")
    clients_on_newest: int = Field(description="Of those, the ones pinned to the newest revision.")


class TargetList(BaseModel):
    targets: list[TargetView]


class RevisionUse(RevisionView):
    newest: bool = Field(description="The module as on disk now: what new clients get.")
    clients: int = Field(description="Clients (not destroyed) pinned to it.")
    client_uuids: list[str] = Field(description="Those clients, oldest first, at most 1000.")


class RevisionList(BaseModel):
    target: str
    module: str
    revisions: list[RevisionUse] = Field(description="Oldest first.")
    unpinned: int = Field(
        0, description="Clients (not destroyed) pinned to no revision this store holds (none yet, or lost)."
    )
