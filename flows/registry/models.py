"""The registry: clients and the runs (requests) that act on them.

The gateway answers lists and statuses from here, so listing 10,000 clients never calls
Prefect; the dispatcher and the syncer keep it in step with Prefect's flow runs.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class ClientStatus(enum.StrEnum):
    pending = "pending"
    provisioning = "provisioning"
    ready = "ready"
    failed = "failed"
    destroying = "destroying"
    destroyed = "destroyed"


class RunStatus(enum.StrEnum):
    accepted = "accepted"
    """Written to the registry, not yet handed to Prefect."""
    in_progress = "in_progress"
    completed = "completed"
    failed = "failed"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.completed, RunStatus.failed)


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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    runs: Mapped[list[Run]] = relationship(back_populates="client", order_by="Run.created_at")


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

    client: Mapped[Client] = relationship(back_populates="runs")
