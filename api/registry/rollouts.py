"""The registry's record of rollouts: the spec, where it is, and each client's step.

Each client's row is the truth a dying flow run leaves behind: a client is pending,
planned, applying (its upgrade run is open), applied, failed, skipped or held, each with
its reason, so a rollout is carried on, or ended, from here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.registry.models import Base, InvalidTransition, new_id, utcnow
from flows.rollouts.contract import ClientStep, RolloutSpec, RolloutStatus


class Rollout(Base):
    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_target_status", "target", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    target: Mapped[str] = mapped_column(String(64))
    revision: Mapped[str | None] = mapped_column(String(64))
    """Where every client goes; None for a rollback (each client to its own revision)."""
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=RolloutStatus.accepted)
    message: Mapped[str] = mapped_column(Text, default="")
    current_wave: Mapped[int] = mapped_column(Integer, default=0)
    pause_requested: Mapped[bool] = mapped_column(default=False)
    rollback_of: Mapped[str | None] = mapped_column(String(36))
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    """Each leg (the first, then one per resume) is its own flow run, keyed by attempt."""
    dispatch: Mapped[bool] = mapped_column(default=True)
    """A flow run is owed to Prefect (the dispatcher creates it, once per attempt)."""
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    ended_at: Mapped[datetime | None]

    clients: Mapped[list[RolloutClient]] = relationship(
        back_populates="rollout", order_by="RolloutClient.id", cascade="all, delete-orphan"
    )

    @property
    def state(self) -> RolloutStatus:
        return RolloutStatus(self.status)

    @property
    def parsed(self) -> RolloutSpec:
        return RolloutSpec.model_validate(self.spec)

    def move(self, status: RolloutStatus, message: str) -> None:
        if self.state.terminal:
            raise InvalidTransition(f"rollout {self.id} is {self.status}: {self.message}")
        self.status, self.message = status, message
        if status.terminal:
            self.ended_at = utcnow()


class RolloutClient(Base):
    __tablename__ = "rollout_clients"
    __table_args__ = (
        UniqueConstraint("rollout_id", "client_id", name="uq_rollout_client"),
        Index("ix_rollout_clients_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id"), index=True)
    wave: Mapped[int] = mapped_column(Integer)
    client_id: Mapped[str] = mapped_column(String(36), index=True)
    from_revision: Mapped[str | None] = mapped_column(String(64))
    to_revision: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(16), default=ClientStep.pending)
    reason: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    run_id: Mapped[str | None] = mapped_column(String(36))
    planned_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]

    rollout: Mapped[Rollout] = relationship(back_populates="clients")

    def to(self, step: ClientStep, reason: str = "") -> None:
        self.step, self.reason = step, reason
        if step.settled:
            self.ended_at = utcnow()
