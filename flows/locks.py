"""One run per client at a time, a fleet-wide cap on Terraform runs, failing closed.

A slot is taken only from a limit that exists: a missing one is created and taken again,
and one that still is not there raises instead of letting two runs touch the same state
(Prefect's ``concurrency()`` only warns about a limit that does not exist).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    VariableCreate,
    VariableUpdate,
)
from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.utilities.asyncutils import run_coro_as_sync

from flows import prefect_adapter
from flows.logs import run_logger
from flows.prefect_adapter import (
    ConcurrencySlotAcquisitionError,
    emit_concurrency_acquisition_events,
    emit_concurrency_release_events,
    maintain_concurrency_lease,
    release_concurrency_slots_with_lease,
    transient,
)
from flows.settings import Settings

FLEET_LIMIT = "tenantform-fleet"


def client_limit_name(client_id: str) -> str:
    return f"tenantform-client-{client_id}"


async def aensure_limit(name: str, limit: int) -> None:
    """Read first: creating one that exists makes a PostgreSQL-backed server log a unique
    violation on every run."""
    async with get_client() as client:
        try:
            current = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit, active=True)
                )
            return
        if current.limit != limit or not current.active:
            await client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=limit, active=True)
            )


def ensure_limit(name: str, limit: int) -> None:
    run_coro_as_sync(aensure_limit(name, limit))


HOLDER_PREFIX = "tenantform-lock-holder-"


def take_holder(client_id: str) -> str | None:
    """Record this flow run as the one acting on the client's state (a Prefect variable),
    and return the flow run that did before, whose Terraform may have died holding the
    state lock. Called with the client's slot held, so no one else is acting: one read
    and one write (``Variable.get`` and ``Variable.set`` make four calls)."""
    from prefect.runtime import flow_run

    name = f"{HOLDER_PREFIX}{client_id}"
    me = flow_run.id
    with get_client(sync_client=True) as client:
        current = client.read_variable_by_name(name)
        previous = str(current.value) if current is not None and current.value else None
        if me and previous != me:
            if current is None:
                with contextlib.suppress(ObjectAlreadyExists):
                    client.create_variable(VariableCreate(name=name, value=me))
            else:
                client.update_variable(VariableUpdate(name=name, value=me))
    return previous if previous != me else None


def forget_holder(client_id: str) -> None:
    from prefect.variables import Variable

    with contextlib.suppress(ObjectNotFound, ValueError):
        Variable.unset(f"{HOLDER_PREFIX}{client_id}")


def holder_gone(flow_run_id: str | None) -> bool:
    """Provably gone: Prefect says its run has ended (or no longer knows it)."""
    if not flow_run_id:
        return False
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return True
    return run.state is not None and run.state.is_final()


BUSY_PATIENCE = 30
"""How long a caller that does not wait (a sweep) gives Prefect's own ``concurrency()``."""
LEASE_SECONDS = 60
"""A short lease frees the slots of a holder that died without a word within about a
minute; a failed renewal (Prefect restarting) must not cancel a running apply."""
GHOST_SECONDS = LEASE_SECONDS + 20
"""By then a slot whose answer was lost is free: its lease lapsed and Prefect's repossessor
(every 15 s) took it back."""
INCREMENT = "/v2/concurrency_limits/increment-with-lease"


class ClientBusy(RuntimeError):
    """The client's slot is taken (a run of its own) and the caller would not wait."""


BUSY = "busy: the client has a run of its own"


def _acquire(
    name: str, limit: int, *, wait: bool = True, doubt: bool = False
) -> ConcurrencyLimitWithLeaseResponse | None:
    """A slot of ``name`` (waiting while the limit is full, unless not ``wait``), or None when
    this path cannot take it (an answer it does not know, such as an older server's 404) and
    Prefect's own ``concurrency()`` must. A 5xx is raised, not handed on: under the same load
    Prefect's ``concurrency()`` turned a busy limit's 423 into a failure the run could not
    retry. In ``doubt`` (an earlier try of ours got no answer) a 423 may be the slot that try
    took: one who would not wait still waits for its lease to lapse before calling it busy."""
    created = False
    body = {"names": [name], "slots": 1, "mode": "concurrency", "lease_duration": LEASE_SECONDS}
    ghost_gone = time.monotonic() + GHOST_SECONDS
    with get_client(sync_client=True) as client:
        while True:
            response = prefect_adapter.send(client, "POST", INCREMENT, body)
            doubt = doubt or prefect_adapter.retried(response)
            if response.status_code == 423 and not wait and (not doubt or time.monotonic() > ghost_gone):
                raise ClientBusy(BUSY)
            if response.status_code == 423:  # full: wait as long as Prefect asks
                time.sleep(float(response.headers.get("Retry-After", "1")))
            elif response.status_code >= 500:  # Prefect overloaded past `send`'s pauses:
                response.raise_for_status()  # transient, so `client_lock` tries again
            elif response.status_code != 200:
                return None
            elif (granted := ConcurrencyLimitWithLeaseResponse.model_validate(response.json())).limits:
                return granted
            elif created:
                raise ConcurrencySlotAcquisitionError(f"concurrency limit {name!r} does not exist")
            else:  # missing (deleted by hand, or no gateway made it): make it, fail closed
                ensure_limit(name, limit)
                created = True


@contextmanager
def _slot(name: str, limit: int, *, wait: bool = True, doubt: bool = False) -> Iterator[None]:
    """A slot of ``name``, strictly, in one call: the gateway creates a client's limit
    before its first flow run and ``up``/``deploy`` the fleet's. Held as Prefect's
    ``concurrency()`` holds it (a renewed lease, released at the end), but taken with
    short pauses on 503 (``flows.prefect_adapter``) instead of Prefect's 2 s. One call for
    both names is not safe: ``concurrency([...], strict=True)`` only fails when *none* of
    the limits exist, so a missing client limit would silently take the fleet slot alone."""
    granted = _acquire(name, limit, wait=wait, doubt=doubt)
    if granted is None:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(
                    concurrency(
                        name,
                        strict=True,
                        lease_duration=LEASE_SECONDS,
                        raise_on_lease_renewal_failure=False,
                        timeout_seconds=None if wait else BUSY_PATIENCE,
                    )
                )
            except TimeoutError:
                raise ClientBusy(BUSY) from None
            yield
        return
    events = emit_concurrency_acquisition_events(granted.limits, 1)
    try:
        with maintain_concurrency_lease(
            granted.lease_id, LEASE_SECONDS, raise_on_lease_renewal_failure=False
        ):
            yield
    finally:
        release_concurrency_slots_with_lease(granted.lease_id)
        emit_concurrency_release_events(granted.limits, 1, events)


LOCK_RETRY_DELAY_SECONDS = 15.0
"""The longest pause between tries at the lock: ``TASK_RETRY_DELAY_SECONDS`` (300 s by
default) is sized for a cloud API's throttling, while a Prefect that did not answer (a 503
of a busy SQLite) answers again within seconds; a bench saw a run wait 300 s for nothing."""


def lock_options(settings: Settings) -> dict[str, Any]:
    """``client_lock``'s fleet cap and retries, from the run's settings."""
    return {
        "fleet_size": settings.fleet_concurrency,
        "retries": settings.task_retries,
        "retry_delay": min(settings.task_retry_delay_seconds, LOCK_RETRY_DELAY_SECONDS),
    }


class LockUnavailable(RuntimeError):
    """The run could not take its client's lock; it changed nothing."""


@contextmanager
def client_lock(
    client_id: str, fleet_size: int, *, retries: int = 0, retry_delay: float = 0.0, wait: bool = True
) -> Iterator[str | None]:
    """Hold the client's own slot, then one fleet slot, for the whole run; gives the flow
    run that held the client's state before this one. Taking them is outside any task, so
    a transient Prefect failure is retried here as a task would retry it. Not ``wait``: a
    client busy with a run of its own raises ``ClientBusy`` at once (a sweep skips it)."""
    for attempt in range(retries + 1):
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(_slot(client_limit_name(client_id), 1, wait=wait, doubt=attempt > 0))
            stack.enter_context(_slot(FLEET_LIMIT, fleet_size))
            previous = take_holder(client_id)
            break
        except ClientBusy:
            stack.close()
            raise
        except Exception as exc:
            stack.close()
            what = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if not transient(exc):
                raise LockUnavailable(f"could not take client {client_id}'s lock: {what}") from exc
            if attempt == retries:
                raise LockUnavailable(
                    f"Prefect did not answer while this run took client {client_id}'s lock "
                    f"({what}; {retries + 1} tries, {retry_delay:g} s apart). Nothing was changed: "
                    f"retry the run when Prefect answers (POST /api/clients/{client_id}/retry)"
                ) from exc
            run_logger().warning(
                "could not take client %s's lock (%s); trying again in %g s (try %d of %d)",
                client_id,
                what,
                retry_delay,
                attempt + 2,
                retries + 1,
            )
            time.sleep(retry_delay)
    with stack:
        yield previous
