"""API keys: several at once, stored as digests, each with a scope, created and revoked
while the gateway runs (a revoked key fails on its next request to the gateway that
revoked it, and within ``KEY_CACHE_SECONDS`` on any other: rotation needs no restart), and
a per-key rate limit. ``API_KEY`` stays the bootstrap admin key."""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy import select

from api.registry.db import Registry
from api.registry.models import ApiKey, Scope, utcnow

caller_name: ContextVar[str | None] = ContextVar("tenantform_caller", default=None)
"""Who is asking, for the run being accepted (set by the auth dependency)."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    name: str
    scope: Scope


KEY_CACHE_SECONDS = 2.0
"""How long a looked-up key is trusted without the registry: auth runs on the event loop,
and a blocking query per request would stall every other request behind it."""


class KeyService:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._seen: dict[str, tuple[float, Caller | None]] = {}

    def create(self, name: str, scope: Scope) -> tuple[ApiKey, str]:
        """The key in clear is returned once and never stored."""
        key = f"tf_{secrets.token_urlsafe(32)}"
        with self.registry.session() as session:
            row = ApiKey(name=name, prefix=key[:10], digest=digest(key), scope=scope)
            session.add(row)
            session.flush()
        return row, key

    def list(self) -> list[ApiKey]:
        with self.registry.session() as session:
            return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)).all())

    def revoke(self, key_id: str) -> ApiKey | None:
        with self.registry.session() as session:
            row = session.get(ApiKey, key_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = utcnow()
            self._seen.clear()
            return row

    def find(self, key: str) -> Caller | None:
        key_digest, now = digest(key), time.monotonic()
        seen = self._seen.get(key_digest)
        if seen is not None and now - seen[0] < KEY_CACHE_SECONDS:
            return seen[1]
        caller = self._lookup(key_digest)
        if len(self._seen) > 10_000:  # unknown keys thrown at the gateway
            self._seen.clear()
        self._seen[key_digest] = (now, caller)
        return caller

    def _lookup(self, key_digest: str) -> Caller | None:
        with self.registry.session() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.digest == key_digest)).first()
            if row is None or row.revoked_at is not None:
                return None
            return Caller(name=f"key:{row.id}", scope=Scope(row.scope))


@dataclass
class RateLimiter:
    """A token bucket per caller: ``per_second`` sustained, ``burst`` at once; 0 disables."""

    per_second: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, caller: str) -> int:
        """0 when the request may go now, else the seconds to wait (Retry-After)."""
        if self.per_second <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0
            self._buckets[caller] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.per_second))
