"""Everything tenantform relies on that Prefect does not promise, in one place: private
modules and attributes, and how its HTTP client retries. ``tests/test_prefect_adapter.py``
pins each behaviour named here, so a Prefect upgrade that changes one fails that test by
name instead of failing runs.

The quick path. A Prefect server on SQLite answers a write 503 "database is locked" when
another write commits between its read and its write, and Prefect's client then waits
2 s, then 4 s. On the few calls between a request and Terraform (a run's slots, the
gateway's flow-run creation) ``send``/``asend`` try again after 50 ms, 100 ms, ... on
whatever Prefect's client would retry (timeouts, connection errors, 408/429/502/503),
send its CSRF token when the server asks for one, then hand the request to Prefect's own
client and its retries; what that client raises for an answer it does not retry (a 423)
comes back as the answer, for the caller to read.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import httpx
from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient
from prefect.client.orchestration import PrefectClient, SyncPrefectClient

# Private: how a run holds a slot exactly as ``prefect.concurrency.sync.concurrency``
# holds it, after taking it through the quick path.
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency._events import (
    emit_concurrency_acquisition_events,
    emit_concurrency_release_events,
)
from prefect.concurrency._leases import maintain_concurrency_lease
from prefect.concurrency._sync import release_concurrency_slots_with_lease

__all__ = [
    "ConcurrencySlotAcquisitionError",
    "asend",
    "emit_concurrency_acquisition_events",
    "emit_concurrency_release_events",
    "maintain_concurrency_lease",
    "release_concurrency_slots_with_lease",
    "retried",
    "send",
    "transient",
]

PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8)
RETRY_STATUS = frozenset({408, 429, 502, 503})
"""What ``PrefectHttpxAsyncClient.send`` retries (its ``retry_codes``)."""
RETRY_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.ReadTimeout,
    httpx.PoolTimeout,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.LocalProtocolError,
    httpx.ConnectError,
)
"""What it retries (ConnectError once it has connected: a server restarting)."""
CSRF_REFUSAL = "Invalid CSRF token"


def transient(exc: BaseException) -> bool:
    """Worth trying again later: Prefect slow, restarting or briefly overloaded."""
    if isinstance(exc, RETRY_EXCEPTIONS):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code in RETRY_STATUS or code >= 500
    return False


def _csrf_refused(response: httpx.Response) -> bool:
    return response.status_code == 403 and CSRF_REFUSAL in response.text


RETRIED = "tenantform_retried"


def retried(response: httpx.Response) -> bool:
    """The request was sent more than once: an earlier try that timed out may still have
    done its work (a slot taken whose answer was lost), so a 423 may be our own."""
    return bool(response.extensions.get(RETRIED, False))


def send(client: SyncPrefectClient, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    http = cast(PrefectHttpxSyncClient, client._client)
    request = http.build_request(method, path, json=body)
    if http.enable_csrf_support:
        http._add_csrf_headers(request)
    for attempt, pause in enumerate(PAUSES):
        try:
            response = httpx.Client.send(http, request)  # once: Prefect's send would wait 2 s
        except RETRY_EXCEPTIONS:
            time.sleep(pause)
            continue
        if _csrf_refused(response) and http.enable_csrf_support:
            response.close()
            http.csrf_token = None
            http._add_csrf_headers(request)
            continue
        if response.status_code not in RETRY_STATUS:
            response.extensions[RETRIED] = attempt > 0
            return response
        response.close()
        time.sleep(pause)
    try:
        response = http.send(request)
    except httpx.HTTPStatusError as exc:  # Prefect's send raises what it does not retry (a 423)
        response = exc.response
    response.extensions[RETRIED] = True
    return response


async def asend(client: PrefectClient, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    http = cast(PrefectHttpxAsyncClient, client._client)
    request = http.build_request(method, path, json=body)
    if http.enable_csrf_support:
        await http._add_csrf_headers(request)
    for pause in PAUSES:
        try:
            response = await httpx.AsyncClient.send(http, request)
        except RETRY_EXCEPTIONS:
            await asyncio.sleep(pause)
            continue
        if _csrf_refused(response) and http.enable_csrf_support:
            await response.aclose()
            http.csrf_token = None
            await http._add_csrf_headers(request)
            continue
        if response.status_code not in RETRY_STATUS:
            return response
        await response.aclose()
        await asyncio.sleep(pause)
    try:
        return await http.send(request)
    except httpx.HTTPStatusError as exc:  # as in `send`: the caller reads the answer
        return exc.response
