"""Registry reads of clients, inside a caller's session."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.errors import NotFound
from api.registry.models import Client


def get(session: Session, client_id: str, kinds: Sequence[str] | None = None) -> Client:
    client = session.get(Client, client_id)
    if client is None or (kinds and client.kind not in kinds):
        what = "client" if not kinds else " or ".join(kinds)
        raise NotFound(f"{what} {client_id} not found")
    return client


def locked(session: Session, client_id: str, kinds: Sequence[str] | None = None) -> Client:
    """The client, with its row write-locked until the transaction ends: requests that
    read the client's runs and then add one (PATCH, retry, DELETE...) take their turns,
    so two of them never decide on the same picture. On SQLite the write starts the
    transaction (the driver begins one only on a write), on PostgreSQL it locks the row."""
    session.execute(text("UPDATE clients SET status = status WHERE id = :id"), {"id": client_id})
    return get(session, client_id, kinds)


def children(session: Session, client_id: str) -> list[Client]:
    return list(session.scalars(select(Client).where(Client.parent_id == client_id)).all())
