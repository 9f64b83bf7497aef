"""What crosses between the gateway and the ``rollout`` flow: the spec a person posts,
the clients of a wave, what a plan showed, and the statuses both sides read."""

from __future__ import annotations

import enum
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.contract import FlowParameters, ResourceChange

Action = Literal["create", "update", "delete", "replace"]
LABEL_SELECTOR = r"^[a-z0-9]([a-z0-9._/-]{0,62})$"


class RolloutStatus(enum.StrEnum):
    accepted = "accepted"
    """Written to the registry; the dispatcher hands it to Prefect."""
    running = "running"
    paused = "paused"
    """After a wave with a manual gate, or on request: ``POST .../resume`` goes on."""
    halted = "halted"
    """A wave's failures passed its tolerance, or the rollout's flow run died: the message
    says which. Resume goes on with the held clients; abort ends it; rollback undoes it."""
    completed = "completed"
    aborted = "aborted"

    @property
    def open(self) -> bool:
        """Holds its target: a second rollout of the target is refused meanwhile."""
        return self in (RolloutStatus.accepted, RolloutStatus.running, RolloutStatus.paused)

    @property
    def terminal(self) -> bool:
        return self in (RolloutStatus.completed, RolloutStatus.aborted)


class ClientStep(enum.StrEnum):
    """Where one client of a rollout is."""

    pending = "pending"
    """Chosen for its wave; not planned yet."""
    planned = "planned"
    """Planned against the new revision, allowed; its upgrade run is next."""
    applying = "applying"
    """Its upgrade run (a normal provision run) is open."""
    applied = "applied"
    failed = "failed"
    """Its upgrade run failed or the plan could not be made: still on its old revision."""
    skipped = "skipped"
    """Not upgraded, with the reason (a forbidden action, busy, already there, aborted)."""
    held = "held"
    """Not acted on because the rollout halted or paused mid-wave; resume plans it again."""

    @property
    def settled(self) -> bool:
        return self in (ClientStep.applied, ClientStep.failed, ClientStep.skipped)


class Tolerance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int | None = Field(None, ge=0, description="At most this many failed clients in the wave.")
    percent: float | None = Field(None, ge=0, le=100, description="At most this share of the wave failed.")

    @model_validator(mode="after")
    def _one(self) -> Tolerance:
        if self.count is not None and self.percent is not None:
            raise ValueError("give count or percent, not both")
        return self

    def allows(self, failed: int, size: int) -> bool:
        if self.percent is not None:
            return failed <= math.floor(size * self.percent / 100)
        return failed <= (self.count or 0)


class Wave(BaseModel):
    """Which clients a wave takes (of those not taken by an earlier wave) and how."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=64)
    labels: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Only clients carrying all these labels."
    )
    clients: list[str] | None = Field(
        None, max_length=10_000, description="Exactly these clients (a rollback names them)."
    )
    count: int | None = Field(None, ge=1, description="At most this many of what is left.")
    percent: float | None = Field(None, gt=0, le=100, description="This share of what is left, rounded up.")
    max_parallel: int | None = Field(
        None, ge=1, le=1000, description="Upgrade runs open at once (default: the fleet cap)."
    )
    failure_tolerance: Tolerance = Field(
        default_factory=Tolerance, description="Failures past this halt the rollout (default: none)."
    )
    gate: Literal["auto", "manual"] = Field("auto", description="manual: pause after the wave until resumed.")

    @model_validator(mode="after")
    def _one_size(self) -> Wave:
        if self.count is not None and self.percent is not None:
            raise ValueError("give count or percent, not both")
        return self

    def size_of(self, left: int) -> int:
        if self.count is not None:
            return min(self.count, left)
        if self.percent is not None:
            return min(left, math.ceil(left * self.percent / 100))
        return left


def _safe_actions() -> list[Action]:
    return ["create", "update"]


class RolloutSpec(BaseModel):
    """``POST /api/rollouts``."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(max_length=64)
    revision: str = Field(
        pattern=r"^[0-9a-f]{16}$",
        description="The module revision to move to (GET /api/targets/{t}/revisions).",
    )
    waves: list[Wave] = Field(min_length=1, max_length=50)
    allow: list[Action] = Field(
        default_factory=_safe_actions,
        description="Plan actions a client's upgrade may have; by default a plan that deletes or "
        "replaces anything skips its client, naming the resources.",
    )
    pause_between_waves_seconds: float = Field(0, ge=0, le=86_400)
    busy_wait_seconds: float = Field(
        60, ge=0, le=3600, description="How long a client busy with its own run is waited for, then skipped."
    )


class RolloutTarget(BaseModel):
    """One client of a wave, as the flow plans it: ``params.revision`` is where it goes."""

    params: FlowParameters
    step: ClientStep
    from_revision: str | None = None


class WaveStart(BaseModel):
    """The gateway's answer to the flow starting a wave."""

    wave: int
    name: str
    clients: list[RolloutTarget]
    max_parallel: int
    allow: list[str]
    busy_wait_seconds: float
    go: bool = Field(description="False: the rollout is no longer running (paused, aborted); stop.")
    reason: str = ""


class PlanOutcome(BaseModel):
    """What planning one client against the new revision showed."""

    step: Literal["planned", "skipped", "failed", "held"]
    reason: str = ""
    changes: list[ResourceChange] = Field(default_factory=list)


class WaveEnd(BaseModel):
    """The gateway's verdict on a finished wave: go on, pause, halt, or done."""

    status: RolloutStatus
    message: str
    next_wave: int | None
    pause_seconds: float = 0


def rollout_run_name(rollout_id: str) -> str:
    return f"rollout-{rollout_id}"


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
