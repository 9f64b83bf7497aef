"""One run per client at a time, a fleet-wide cap on Terraform runs, failing closed.

Prefect's ``concurrency()`` only warns about a limit that does not exist, so the limits
are created (idempotently) first and then taken with ``strict=True``: a missing or
misnamed limit raises instead of letting two runs touch the same state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

FLEET_LIMIT = "tenantform-fleet"


def client_limit_name(client_id: str) -> str:
    return f"tenantform-client-{client_id}"


def ensure_limit(name: str, limit: int) -> None:
    """Read first: creating one that exists makes a PostgreSQL-backed server log a unique
    violation on every run."""
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit, active=True)
                )
            return
        if current.limit != limit or not current.active:
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=limit, active=True)
            )


@contextmanager
def client_lock(client_id: str, fleet_size: int) -> Iterator[None]:
    """Hold the client's own slot, then one fleet slot, for the whole run."""
    name = client_limit_name(client_id)
    ensure_limit(name, 1)
    ensure_limit(FLEET_LIMIT, fleet_size)
    # A short lease frees the slots of a holder that died without a word within about a
    # minute; a failed renewal (Prefect restarting) must not cancel a running apply.
    with (
        concurrency(name, strict=True, lease_duration=60, raise_on_lease_renewal_failure=False),
        concurrency(FLEET_LIMIT, strict=True, lease_duration=60, raise_on_lease_renewal_failure=False),
    ):
        yield
