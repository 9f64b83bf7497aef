"""Deliveries of runs' ends to their clients' callback URLs: POST of a small JSON body,
signed with HMAC-SHA256 (``X-Tenantform-Signature: sha256=<hex>`` over
``<X-Tenantform-Timestamp>.<body>``, keyed by ``CALLBACK_SECRET``), retried with backoff
until the receiver answers 2xx. Deliveries live in the registry, so a restart loses none."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from api.registry.db import Registry
from api.registry.models import Callback, Run

log = logging.getLogger(__name__)


def callback_body(run: Run) -> str:
    """A run's end as its client's callback receives it (the seed APIs' names: a run is a
    ``request_id``, a client a ``client_uuid``). SQLite hands timestamps back without their
    zone; they were written in UTC."""
    finished = run.finished_at
    if finished is not None and finished.tzinfo is None:
        finished = finished.replace(tzinfo=UTC)
    return json.dumps(
        {
            "request_id": run.id,
            "client_uuid": run.client_id,
            "operation": run.operation,
            "status": run.status,
            "message": run.message,
            "finished_at": finished.isoformat() if finished else None,
        },
        sort_keys=True,
    )


def signature(secret: str, timestamp: str, body: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class CallbackSender:
    def __init__(self, registry: Registry, secret: str | None, *, max_attempts: int = 10) -> None:
        self.registry = registry
        self.secret = secret
        self.max_attempts = max_attempts

    async def deliver_due(self, limit: int = 50) -> int:
        if not self.secret:
            return 0
        now = datetime.now(UTC)
        with self.registry.session() as session:
            due = session.scalars(
                select(Callback)
                .where(Callback.delivered_at.is_(None), Callback.next_at <= now)
                .where(Callback.attempts < self.max_attempts)
                .order_by(Callback.next_at)
                .limit(limit)
            ).all()
            work = [(c.id, c.url, c.body or callback_body(c.run)) for c in due]
        delivered = 0
        async with httpx.AsyncClient(timeout=10) as client:
            for callback_id, url, body in work:
                stamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    "X-Tenantform-Timestamp": stamp,
                    "X-Tenantform-Signature": signature(self.secret, stamp, body),
                }
                try:
                    answer = await client.post(url, content=body, headers=headers)
                    error = "" if answer.is_success else f"HTTP {answer.status_code}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                delivered += self._record(callback_id, error)
        return delivered

    def _record(self, callback_id: int, error: str) -> int:
        with self.registry.session() as session:
            row = session.get(Callback, callback_id)
            if row is None:
                return 0
            row.attempts += 1
            if not error:
                row.delivered_at = datetime.now(UTC)
                return 1
            row.last_error = error
            row.next_at = datetime.now(UTC) + timedelta(seconds=min(2**row.attempts, 300))
            log.warning(
                "callback %s to %s failed (%s); attempt %d", callback_id, row.url, error, row.attempts
            )
            return 0
