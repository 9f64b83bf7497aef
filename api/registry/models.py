"""The registry: clients and the runs (requests) that act on them, and the rules of how
their statuses may change.

The gateway answers lists and statuses from here, so listing 10,000 clients never calls
Prefect; the dispatcher and the syncer keep it in step with Prefect's flow runs. A status
changes only through a method of ``Client`` or ``Run``, which refuses a change the
lifecycle does not allow with ``InvalidTransition``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from flows.contract import DriftCheck, DriftStatus, Operation, PolicyLevel, PolicyOutcome, Remediation


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class InvalidTransition(Exception):
    """The lifecycle does not allow this change in the current status."""


class ClientStatus(enum.StrEnum):
    pending = "pending"
    provisioning = "provisioning"
    ready = "ready"
    failed = "failed"
    destroying = "destroying"
    destroyed = "destroyed"


class Approval(enum.StrEnum):
    auto = "auto"
    """A provision applies what it plans."""
    required = "required"
    """A provision plans, then waits for POST /api/runs/{run_id}/approve."""


class RunStatus(enum.StrEnum):
    accepted = "accepted"
    """Written to the registry, not yet handed to Prefect."""
    in_progress = "in_progress"
    awaiting_approval = "awaiting_approval"
    """Planned; the flow run is suspended (no worker slot held) until approved or rejected."""
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.completed, RunStatus.failed, RunStatus.cancelled)


OPEN_RUN = (RunStatus.accepted, RunStatus.in_progress, RunStatus.awaiting_approval)

CLIENT_EFFECTS: dict[Operation, tuple[ClientStatus, ClientStatus]] = {
    Operation.provision: (ClientStatus.provisioning, ClientStatus.ready),
    Operation.destroy: (ClientStatus.destroying, ClientStatus.destroyed),
}
"""The client's status while an operation runs and after it succeeds; when it fails the
client is ``failed``. Operations not listed leave the client's status alone."""

NEEDS_READY = frozenset({Operation.create_tables})
"""Operations a client takes only when it is ready."""


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("clients.id"), index=True)
    inputs: Mapped[dict[str, Any]]
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=ClientStatus.pending)
    status_message: Mapped[str] = mapped_column(Text, default="")
    outputs: Mapped[dict[str, Any] | None]
    module_version: Mapped[str | None] = mapped_column(String(64))
    """Content hash of the Terraform module that built the current state."""
    revision: Mapped[str | None] = mapped_column(String(64), index=True)
    """The module revision the client is pinned to: its runs plan and apply it, and only a
    completed provision of another revision (an upgrade) moves it."""
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default="{}")
    """Free-form key/value labels (``ring: canary``) rollouts and lists select clients by."""
    approval: Mapped[str] = mapped_column(String(16), default=Approval.auto, server_default="auto")
    remediation: Mapped[str] = mapped_column(String(16), default=Remediation.report, server_default="report")
    drift_status: Mapped[str] = mapped_column(
        String(16), default=DriftStatus.unknown, server_default="unknown", index=True
    )
    drift_checked_at: Mapped[datetime | None]
    drift_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    drift_resources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    """Told of every run's end (POST, HMAC-signed), retried until it answers 2xx."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    runs: Mapped[list[Run]] = relationship(back_populates="client", order_by="Run.created_at")

    @property
    def gone(self) -> bool:
        return self.status in (ClientStatus.destroying, ClientStatus.destroyed)

    def require_live(self) -> None:
        if self.status == ClientStatus.destroyed:
            raise InvalidTransition(f"client {self.id} is already destroyed")

    def require_ready(self, what: str) -> None:
        if self.status != ClientStatus.ready:
            raise InvalidTransition(f"client {self.id} is {self.status}; {what} needs it ready")

    def require_can_host_children(self) -> None:
        if self.gone or self.status == ClientStatus.failed:
            detail = f": {self.status_message}" if self.status_message else ""
            raise InvalidTransition(f"parent {self.id} is {self.status}{detail}")

    def require_accepting(self, operation: Operation | None, destroying: Run | None) -> None:
        """Whether the client takes a new run of ``operation`` (None: a change of its inputs
        or settings): never once destroyed; once a destroy is accepted (``destroying``), only
        that destroy, since anything else would run after it; ``NEEDS_READY`` operations
        only on a ready client."""
        self.require_live()
        if operation is not Operation.destroy and destroying is not None:
            raise InvalidTransition(
                f"client {self.id} is being destroyed (run {destroying.id} is {destroying.status})"
            )
        if operation is not None and operation in NEEDS_READY:
            self.require_ready(operation.value)

    def require_destroyable(self, live_children: list[Client], *, cascade: bool) -> None:
        """A parent is destroyed with its sub-clients only when asked to (``cascade``)."""
        if live_children and not cascade:
            names = ", ".join(c.id for c in live_children)
            raise InvalidTransition(
                f"client {self.id} still has {len(live_children)} sub-client(s) ({names}); "
                "delete them first or pass cascade=true"
            )

    def require_retryable(self, last: Run | None) -> Run:
        """The run a retry repeats: the client's last one, when it failed or was cancelled."""
        if last is None or last.status not in (RunStatus.failed, RunStatus.cancelled):
            state = "has no run" if last is None else f"last run {last.id} is {last.status}"
            raise InvalidTransition(f"client {self.id} {state}; only a failed or cancelled run is retried")
        return last

    def record_check(self, check: DriftCheck) -> None:
        """A sweep's finding. A skipped check (the client was busy) leaves the last one."""
        if check.action == "skipped":
            return
        self.drift_status = check.status
        self.drift_checked_at = check.checked_at
        self.drift_reason = check.reason
        self.drift_resources = [r.model_dump() for r in check.resources]
        if check.action == "healed" and check.outputs is not None:
            self.outputs = check.outputs
            self.module_version = check.module_version or self.module_version

    def run_started(self, operation: Operation) -> None:
        if (effect := CLIENT_EFFECTS.get(operation)) is not None:
            self.status = effect[0]

    def run_finished(self, run: Run) -> None:
        """What a terminal run means for its client."""
        effect = CLIENT_EFFECTS.get(Operation(run.operation))
        if effect is None:
            return
        if run.status == RunStatus.cancelled and run.flow_run_id is None:
            return  # cancelled before Prefect took it: nothing was touched
        ok = run.status == RunStatus.completed
        self.status = effect[1] if ok else ClientStatus.failed
        self.status_message = "" if ok else run.message
        if ok and effect[1] == ClientStatus.ready:
            self.outputs = (run.result or {}).get("outputs", {})
            self.module_version = (run.result or {}).get("module_version") or self.module_version
            self.revision = run.revision or self.module_version
        elif ok and effect[1] == ClientStatus.destroyed:
            self.outputs = None
            self.module_version = None


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    operation: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.accepted)
    message: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]]
    flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    dispatch_attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]
    started_by: Mapped[str | None] = mapped_column(String(64))
    """The key that asked for the run (``key:<id>``, ``bootstrap``, ``basic:<user>``)."""
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    """Set when a person asked to cancel (or reject) the run; the run ends ``cancelled``."""
    revision: Mapped[str | None] = mapped_column(String(64))
    """The module revision the run plans and applies (None: runs from before revisions)."""

    client: Mapped[Client] = relationship(back_populates="runs")
    callbacks: Mapped[list[Callback]] = relationship(back_populates="run")

    @property
    def terminal(self) -> bool:
        return RunStatus(self.status).terminal

    def _require(self, *allowed: RunStatus) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"run {self.id} is {self.status}")

    def dispatched(self, flow_run_id: str) -> None:
        """Prefect took the run: it now has a flow run."""
        self._require(RunStatus.accepted)
        self.status = RunStatus.in_progress
        self.flow_run_id = flow_run_id
        self.message = "flow run created"
        self.client.run_started(Operation(self.operation))

    def dispatch_failed(self, reason: str) -> None:
        """Prefect did not take the run yet; it stays accepted and is tried again."""
        self._require(RunStatus.accepted)
        self.dispatch_attempts += 1
        self.message = f"waiting for Prefect: {reason}"[:500]

    def held(self, reason: str) -> None:
        """The run stays accepted, not handed to Prefect yet; ``reason`` says what it waits
        for (another run of its client, its parent, its sub-clients, Prefect)."""
        self._require(RunStatus.accepted)
        self.message = reason[:500]

    def awaiting_flow_run(self) -> str:
        """The suspended flow run an approval resumes; refused unless the run awaits one."""
        if self.status != RunStatus.awaiting_approval or self.flow_run_id is None:
            raise InvalidTransition(f"run {self.id} is {self.status}, not awaiting approval")
        return self.flow_run_id

    def waiting_for_approval(self, message: str) -> None:
        self._require(RunStatus.in_progress, RunStatus.awaiting_approval)
        self.status = RunStatus.awaiting_approval
        self.message = message

    def resumed(self) -> None:
        self._require(RunStatus.awaiting_approval, RunStatus.in_progress)
        self.status = RunStatus.in_progress
        self.message = "approved; applying the saved plan"

    def reject(self) -> None:
        """End a run awaiting approval without applying its plan."""
        self.awaiting_flow_run()
        self.request_cancel("plan rejected")

    def request_cancel(self, reason: str) -> None:
        """Ask for the run to stop. A run Prefect never took ends at once; one in Prefect
        ends when its flow run does (the syncer sees it Cancelled)."""
        self._require(*OPEN_RUN)
        self.cancel_reason = reason
        if self.status == RunStatus.accepted:
            self.end(RunStatus.cancelled, reason, None)
        else:
            self.message = f"cancelling: {reason}"

    def overridable_policies(self) -> list[str]:
        """The soft-mandatory policies that denied this run, for an override; refused when
        the run was not denied by a policy, or when a hard-mandatory one denied it too."""
        denied = [
            p for p in (self.result or {}).get("policies", []) if p.get("outcome") == PolicyOutcome.deny.value
        ]
        if self.status != RunStatus.failed or not denied:
            raise InvalidTransition(f"run {self.id} was not denied by a policy; nothing to override")
        if hard := [p["policy"] for p in denied if p.get("level") != PolicyLevel.soft_mandatory.value]:
            raise InvalidTransition(
                f"run {self.id} was denied by {', '.join(hard)} ({PolicyLevel.hard_mandatory.value}): "
                "it cannot be overridden"
            )
        return [p["policy"] for p in denied]

    def end(self, status: RunStatus, message: str, result: dict[str, Any] | None) -> None:
        if not status.terminal:
            raise InvalidTransition(f"{status} is not an end")
        self._require(*OPEN_RUN)
        self.status = status
        self.message = message
        self.result = result
        self.finished_at = utcnow()
        self.client.run_finished(self)
        if self.client.callback_url:
            # Written with the end itself: a crash after this commit still delivers it. The
            # body is the run's end in the callback's own shape, made when it is sent
            # (``api.callbacks``); a run never changes once ended.
            self.callbacks.append(Callback(url=self.client.callback_url, body=""))


class DriftRecord(Base):
    """One check of one client by one sweep (skipped ones included)."""

    __tablename__ = "drift_checks"
    __table_args__ = (Index("ix_drift_checks_client_checked", "client_id", "checked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"))
    checked_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    resources: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    flow_run_id: Mapped[str] = mapped_column(String(36), index=True)


class Scope(enum.StrEnum):
    """Each scope includes the ones before it."""

    read = "read"
    write = "write"
    policy_override = "policy:override"
    """``write``, and overriding a soft-mandatory policy's denial for one run."""
    admin = "admin"

    def allows(self, needed: Scope) -> bool:
        order = list(Scope)
        return order.index(self) >= order.index(needed)


class ApiKey(Base):
    """A key is shown once, at creation; only its SHA-256 is kept (keys are 256 random
    bits, so a fast hash is as safe as a slow one and costs nothing per request)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(12))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Callback(Base):
    """One delivery of a run's end to its client's callback URL."""

    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_pending", "delivered_at", "next_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    url: Mapped[str] = mapped_column(String(2048))
    body: Mapped[str] = mapped_column(Text)
    """Empty: the body is made from ``run`` when sent. Rows written before that carry it."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")

    run: Mapped[Run] = relationship(back_populates="callbacks")


class SweepStatus(enum.StrEnum):
    accepted = "accepted"
    """Written to the registry, not yet handed to Prefect."""
    dispatched = "dispatched"
    """A flow run of the reconcile deployment plans its clients; results land in drift."""
    failed = "failed"
    """Never started; ``message`` says why."""


class Sweep(Base):
    """A sweep asked through the API: accepted at once, handed to Prefect by the dispatcher
    like every run (a scheduled sweep is Prefect's own and has no row here)."""

    __tablename__ = "sweeps"
    __table_args__ = (Index("ix_sweeps_status", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(16), default=SweepStatus.accepted)
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    client_id: Mapped[str | None] = mapped_column(String(36))
    clients: Mapped[int] = mapped_column(Integer)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]

    def dispatched(self, flow_run_id: str) -> None:
        self._leave_accepted()
        self.status, self.flow_run_id, self.dispatched_at = SweepStatus.dispatched, flow_run_id, utcnow()
        self.message = "handed to Prefect; each client's check lands in its drift history"

    def failed(self, reason: str) -> None:
        self._leave_accepted()
        self.status, self.message = SweepStatus.failed, reason

    def _leave_accepted(self) -> None:
        if self.status != SweepStatus.accepted:
            raise InvalidTransition(f"sweep {self.id} is {self.status}, no longer accepted")
