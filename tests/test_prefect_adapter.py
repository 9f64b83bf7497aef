"""Pins each Prefect behaviour ``flows/prefect_adapter.py`` relies on, so a Prefect upgrade
that changes one fails here by name.

The faults (a 503, a read timeout, a dropped connection, a CSRF refusal) come from a small
HTTP server on a real socket standing in for Prefect's API: no emulator of Prefect that
can misbehave on cue exists. What the concurrency slots do is checked against the
session's real Prefect server.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient
from prefect.client.orchestration import PrefectClient, SyncPrefectClient
from prefect.settings import (
    PREFECT_API_REQUEST_TIMEOUT,
    PREFECT_CLIENT_CSRF_SUPPORT_ENABLED,
    PREFECT_CLIENT_MAX_RETRIES,
    PREFECT_CLIENT_RETRY_EXTRA_CODES,
    temporary_settings,
)

from flows import prefect_adapter
from flows.prefect_adapter import RETRY_EXCEPTIONS, RETRY_STATUS, transient

Answer = Callable[[BaseHTTPRequestHandler], None]


def status(code: int, text: str = "", retry_after: str | None = None) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        body = (text or json.dumps({"ok": code == 200})).encode()
        handler.send_response(code)
        if retry_after is not None:
            handler.send_header("Retry-After", retry_after)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def stall(seconds: float) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        status(200)(handler)

    return answer


def hang_up(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True
    handler.connection.shutdown(2)


class Stub:
    """Answers each POST with the next scripted answer; records what it was sent."""

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.posts: list[dict[str, str]] = []
        self.csrf_token: str | None = None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/api/csrf-token") and stub.csrf_token:
                    expiry = "2999-01-01T00:00:00Z"
                    body = {"token": stub.csrf_token, "client": "c", "expiration": expiry}
                    status(200, json.dumps(body))(self)
                else:
                    status(404, json.dumps({"detail": "Not Found"}))(self)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                stub.posts.append(dict(self.headers))
                if stub.csrf_token and self.headers.get("Prefect-Csrf-Token") != stub.csrf_token:
                    status(403, json.dumps({"detail": "Invalid CSRF token"}))(self)
                    return
                (stub.script.pop(0) if stub.script else status(200))(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    yield server
    server.close()


def _sync_client(url: str, csrf: bool = False) -> SyncPrefectClient:
    with temporary_settings({PREFECT_CLIENT_CSRF_SUPPORT_ENABLED: csrf}):
        return SyncPrefectClient(url, httpx_settings={"timeout": 0.5})


def test_the_clients_private_parts_we_use_are_there() -> None:
    client = _sync_client("http://127.0.0.1:9/api")
    assert isinstance(client._client, PrefectHttpxSyncClient)
    for http in (client._client, PrefectClient("http://127.0.0.1:9/api")._client):
        assert isinstance(http, PrefectHttpxSyncClient | PrefectHttpxAsyncClient)
        assert hasattr(http, "enable_csrf_support") and hasattr(http, "csrf_token")
        assert callable(http._add_csrf_headers)


def test_we_retry_exactly_the_status_codes_prefect_retries(stub: Stub) -> None:
    """Prefect's own send against each code (Retry-After: 0, one retry): a second request
    means it retries that code. The quick path must retry the same set."""
    retried = set()
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 1, PREFECT_CLIENT_RETRY_EXTRA_CODES: set()}):
        http = _sync_client(stub.url)._client
        for code in (400, 403, 404, 408, 409, 423, 429, 500, 502, 503, 504):
            stub.posts.clear()
            stub.script = [status(code, retry_after="0"), status(200)]
            with contextlib.suppress(httpx.HTTPStatusError):  # raised for an unretried code
                http.send(http.build_request("POST", "/x", json={}))
            if len(stub.posts) == 2:
                retried.add(code)
    assert retried == RETRY_STATUS


def test_prefect_retries_the_exceptions_we_retry(stub: Stub) -> None:
    """A read timeout and a dropped connection: Prefect's own send tries again."""
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 1}):
        http = _sync_client(stub.url)._client
        http.send(http.build_request("POST", "/warm", json={}))  # connected once
        for fault in (stall(1.5), hang_up):
            stub.posts.clear()
            stub.script = [fault, status(200)]
            response = http.send(http.build_request("POST", "/x", json={}))
            assert response.status_code == 200 and len(stub.posts) == 2
    assert {httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ConnectError} <= set(RETRY_EXCEPTIONS)


def test_quick_send_rides_out_503s_timeouts_and_hang_ups(stub: Stub) -> None:
    stub.script = [status(503), stall(1.5), hang_up, status(502), status(201)]
    response = prefect_adapter.send(_sync_client(stub.url), "POST", "/x", {"a": 1})
    assert response.status_code == 201
    assert len(stub.posts) == 5


def test_an_answer_prefects_own_send_raises_comes_back_as_the_answer(stub: Stub) -> None:
    """Past the quick pauses the request goes to Prefect's send, which raises a 423 (a full
    limit: wait, not fail); ``send`` and ``asend`` hand it back (a bench's provision once
    failed with "could not take client ...'s lock: 423 Locked")."""
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
        stub.script = [status(503)] * 5 + [status(423, retry_after="0.1")]
        response = prefect_adapter.send(_sync_client(stub.url), "POST", "/x", {})
        assert response.status_code == 423 and prefect_adapter.retried(response)

        async def go() -> httpx.Response:
            with temporary_settings({PREFECT_CLIENT_CSRF_SUPPORT_ENABLED: False}):
                client = PrefectClient(stub.url, httpx_settings={"timeout": 0.5})
            return await prefect_adapter.asend(client, "POST", "/x", {})

        stub.script = [status(503)] * 5 + [status(423, retry_after="0.1")]
        assert asyncio.run(go()).status_code == 423
    assert len(stub.posts) == 12


def test_async_quick_send_rides_out_the_same(stub: Stub) -> None:
    stub.script = [status(503), hang_up, status(200)]

    async def go() -> httpx.Response:
        with temporary_settings({PREFECT_CLIENT_CSRF_SUPPORT_ENABLED: False}):
            client = PrefectClient(stub.url, httpx_settings={"timeout": 0.5})
        return await prefect_adapter.asend(client, "POST", "/x", {})

    assert asyncio.run(go()).status_code == 200
    assert len(stub.posts) == 3


def test_quick_send_sends_the_csrf_token_when_the_server_asks(stub: Stub) -> None:
    stub.csrf_token = f"token-{uuid.uuid4()}"
    response = prefect_adapter.send(_sync_client(stub.url, csrf=True), "POST", "/x", {})
    assert response.status_code == 200
    assert stub.posts[-1]["Prefect-Csrf-Token"] == stub.csrf_token

    async def go() -> httpx.Response:
        with temporary_settings({PREFECT_CLIENT_CSRF_SUPPORT_ENABLED: True}):
            client = PrefectClient(stub.url, httpx_settings={"timeout": 0.5})
        return await prefect_adapter.asend(client, "POST", "/x", {})

    stub.csrf_token = f"token-{uuid.uuid4()}"  # a rotated token: refused once, fetched again
    assert asyncio.run(go()).status_code == 200


def test_transient_tells_a_slow_prefect_from_a_wrong_request() -> None:
    request = httpx.Request("POST", "http://x/api")
    assert transient(httpx.ReadTimeout("timed out", request=request))
    assert transient(httpx.ConnectError("refused", request=request))
    for code, expected in ((503, True), (500, True), (429, True), (404, False), (422, False)):
        error = httpx.HTTPStatusError("x", request=request, response=httpx.Response(code, request=request))
        assert transient(error) is expected
    assert not transient(ValueError("bad input"))


def test_the_private_concurrency_functions_take_what_we_pass() -> None:
    def params(fn: Callable[..., Any]) -> list[str]:
        return list(inspect.signature(fn).parameters)

    assert params(prefect_adapter.maintain_concurrency_lease)[:3] == [
        "lease_id",
        "lease_duration",
        "raise_on_lease_renewal_failure",
    ]
    assert params(prefect_adapter.release_concurrency_slots_with_lease)[:1] == ["lease_id"]
    assert len(params(prefect_adapter.emit_concurrency_acquisition_events)) >= 2
    assert len(params(prefect_adapter.emit_concurrency_release_events)) >= 3
    assert issubclass(prefect_adapter.ConcurrencySlotAcquisitionError, Exception)


def test_a_slot_taken_by_the_quick_path_is_held_and_released(prefect_server: str) -> None:
    from prefect.client.orchestration import get_client

    from flows import locks

    name = f"tenantform-pin-{uuid.uuid4()}"
    locks.ensure_limit(name, 1)

    def active() -> int:
        with get_client(sync_client=True) as client:
            return int(client.read_global_concurrency_limit_by_name(name).active_slots)

    with locks._slot(name, 1):
        assert active() == 1
    assert active() == 0


def test_a_lock_prefect_cannot_give_ends_the_run_with_a_reason(
    stub: Stub, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every answer a timeout: the run stops before Terraform, saying what to do; each pause
    between tries is said first."""
    from prefect.settings import PREFECT_API_URL

    from flows import locks

    stub.script = [stall(1.5)] * 100
    client_id = str(uuid.uuid4())
    said_to = logging.getLogger(f"test-{client_id}")  # the run's logger, outside a run
    monkeypatch.setattr(locks, "run_logger", lambda: said_to)
    with temporary_settings(
        {
            PREFECT_API_URL: stub.url,
            PREFECT_API_REQUEST_TIMEOUT: 0.5,
            PREFECT_CLIENT_MAX_RETRIES: 0,
            PREFECT_CLIENT_CSRF_SUPPORT_ENABLED: False,
        }
    ):
        with pytest.raises(locks.LockUnavailable) as raised:
            with locks.client_lock(client_id, 2, retries=1, retry_delay=0.1):
                pytest.fail("entered without a lock")
    reason = str(raised.value)
    assert "Prefect did not answer" in reason and "2 tries" in reason
    assert f"POST /api/clients/{client_id}/retry" in reason
    said = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert len(said) == 1 and f"client {client_id}'s lock" in said[0] and "in 0.1 s (try 2 of 2)" in said[0]


def test_the_lock_pauses_between_tries_far_less_than_a_terraform_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Prefect that did not answer answers again in seconds: the task delay (300 s by
    default, for a cloud API's throttling) is capped for the lock."""
    from flows import locks
    from flows.settings import Settings

    monkeypatch.delenv("TASK_RETRY_DELAY_SECONDS")
    options = locks.lock_options(Settings(_env_file=None))
    assert (
        options["retry_delay"]
        == locks.LOCK_RETRY_DELAY_SECONDS
        < Settings(_env_file=None).task_retry_delay_seconds
    )
    monkeypatch.setenv("TASK_RETRY_DELAY_SECONDS", "2")
    assert locks.lock_options(Settings(_env_file=None))["retry_delay"] == 2


def test_a_5xx_storm_is_retried_by_the_lock_not_handed_to_prefects_concurrency(stub: Stub) -> None:
    """A 500 that outlasts the quick path's pauses is transient: ``client_lock`` tries again
    (Prefect's ``concurrency()`` once turned such a moment into a 423 the run died of)."""
    from prefect.settings import PREFECT_API_URL

    from flows import locks

    stub.script = [status(500)] * 7
    with temporary_settings(
        {PREFECT_API_URL: stub.url, PREFECT_CLIENT_MAX_RETRIES: 0, PREFECT_CLIENT_CSRF_SUPPORT_ENABLED: False}
    ):
        with pytest.raises(httpx.HTTPStatusError) as raised:
            locks._acquire("tenantform-client-x", 1)
        assert raised.value.response.status_code == 500 and transient(raised.value)
        with pytest.raises(locks.LockUnavailable) as ended:
            with locks.client_lock(str(uuid.uuid4()), 2, retries=0):
                pytest.fail("entered without a lock")
    assert "Prefect did not answer" in str(ended.value)


def test_a_sweep_whose_slot_answer_was_lost_is_not_skipped_as_busy(stub: Stub) -> None:
    """A slot request that timed out may still have taken the slot (Prefect's SQLite held for a
    minute, the answer lost); the retry is then refused 423 by our own ghost. A sweep (which
    does not wait for a busy client) waits for that lease to lapse instead of skipping a
    client nobody holds; without a lost answer a 423 is busy at once."""
    from prefect.settings import PREFECT_API_URL

    from flows import locks

    name = "tenantform-client-x"
    granted = {"lease_id": str(uuid.uuid4()), "limits": [{"id": str(uuid.uuid4()), "name": name, "limit": 1}]}
    settings = {
        PREFECT_API_URL: stub.url,
        PREFECT_CLIENT_MAX_RETRIES: 0,
        PREFECT_CLIENT_CSRF_SUPPORT_ENABLED: False,
        PREFECT_API_REQUEST_TIMEOUT: 0.5,
    }
    with temporary_settings(settings):
        stub.script = [stall(1.5), status(423, retry_after="0.1"), status(200, json.dumps(granted))]
        got = locks._acquire(name, 1, wait=False)
        assert got is not None and str(got.lease_id) == granted["lease_id"]
        assert not stub.script, "it waited out the 423 and took the slot"

        stub.script = [status(423, retry_after="0.1"), status(200, json.dumps(granted))]
        with pytest.raises(locks.ClientBusy):
            locks._acquire(name, 1, wait=False)
        assert len(stub.script) == 1, "a plain 423 is busy at once"
