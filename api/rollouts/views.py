"""What the rollout routes answer: a rollout per wave, per client."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.registry.rollouts import Rollout, RolloutClient
from api.schemas import Timestamp
from flows.contract import ResourceChange
from flows.rollouts.contract import ClientStep, RolloutSpec, RolloutStatus


class RolloutClientView(BaseModel):
    client_id: str
    step: ClientStep
    from_revision: str | None
    to_revision: str
    reason: str = Field(description="Why it failed, was skipped or is held.")
    changes: list[ResourceChange] = Field(description="What its plan against the new revision showed.")
    run_id: str | None = Field(description="Its upgrade run (GET /api/runs/{run_id}).")
    planned_at: Timestamp | None
    started_at: Timestamp | None
    ended_at: Timestamp | None

    @classmethod
    def of(cls, row: RolloutClient) -> RolloutClientView:
        return cls(
            client_id=row.client_id,
            step=ClientStep(row.step),
            from_revision=row.from_revision,
            to_revision=row.to_revision,
            reason=row.reason,
            changes=[ResourceChange.model_validate(c) for c in row.changes or []],
            run_id=row.run_id,
            planned_at=row.planned_at,
            started_at=row.started_at,
            ended_at=row.ended_at,
        )


class WaveView(BaseModel):
    index: int
    name: str
    status: Literal["not_started", "in_progress", "done"]
    counts: dict[str, int] = Field(description="Clients per step.")
    clients: list[RolloutClientView]


class RolloutView(BaseModel):
    rollout_id: str
    target: str
    revision: str | None = Field(description="Where every client goes (None: a rollback, each to its own).")
    status: RolloutStatus
    message: str
    current_wave: int
    rollback_of: str | None
    flow_run_id: str | None = Field(description="The flow run of its current leg (one per start or resume).")
    attempt: int
    created_by: str | None
    created_at: Timestamp
    ended_at: Timestamp | None
    spec: RolloutSpec
    waves: list[WaveView]

    @classmethod
    def of(cls, rollout: Rollout) -> RolloutView:
        spec = rollout.parsed
        waves = []
        for index, wave in enumerate(spec.waves):
            rows = [r for r in rollout.clients if r.wave == index]
            settled = all(ClientStep(r.step).settled for r in rows)
            if not rows and index >= rollout.current_wave and rollout.status != RolloutStatus.completed:
                status: Any = "not_started"
            elif settled and (index < rollout.current_wave or rollout.status == RolloutStatus.completed):
                status = "done"
            else:
                status = "in_progress"
            waves.append(
                WaveView(
                    index=index,
                    name=wave.name,
                    status=status,
                    counts=dict(Counter(r.step for r in rows)),
                    clients=[RolloutClientView.of(r) for r in rows],
                )
            )
        return cls(
            rollout_id=rollout.id,
            target=rollout.target,
            revision=rollout.revision,
            status=rollout.state,
            message=rollout.message,
            current_wave=rollout.current_wave,
            rollback_of=rollout.rollback_of,
            flow_run_id=rollout.flow_run_id,
            attempt=rollout.attempt,
            created_by=rollout.created_by,
            created_at=rollout.created_at,
            ended_at=rollout.ended_at,
            spec=spec,
            waves=waves,
        )


class RolloutSummary(BaseModel):
    rollout_id: str
    target: str
    revision: str | None
    status: RolloutStatus
    message: str
    current_wave: int
    waves: int
    rollback_of: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, rollout: Rollout) -> RolloutSummary:
        return cls(
            rollout_id=rollout.id,
            target=rollout.target,
            revision=rollout.revision,
            status=rollout.state,
            message=rollout.message,
            current_wave=rollout.current_wave,
            waves=len(rollout.spec.get("waves", [])),
            rollback_of=rollout.rollback_of,
            created_at=rollout.created_at,
        )


class RolloutList(BaseModel):
    total: int
    limit: int
    offset: int
    rollouts: list[RolloutSummary]
