"""Failure notifications go out through Prefect itself: a provision run the session worker
executes fails for real, and a run is crashed through Prefect's API; the session Prefect
server's automation emails a local SMTP server (aiosmtpd, with a login) and POSTs a local
HTTP receiver, each naming the client, the operation, the reason and the run's link.

The automation matches runs of the session's deployments, which other tests also fail: the
assertions pick this test's runs by their ids, and the automation and blocks are removed
at the end (which is the "settings unset" path)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from deployments.notifications import (
    EMAIL_BLOCK,
    FAILURE_AUTOMATION,
    WEBHOOK_BLOCK,
    ensure_failure_notifications,
    smtp_url,
)
from flows.contract import FlowParameters
from flows.settings import Settings
from tests.support import free_port, wait_until

pytestmark = pytest.mark.usefixtures("worker")

SMTP_USER, SMTP_PASSWORD = "alerts", "smtp-p@ss/w:rd-0123"
WEBHOOK_TOKEN = "hook-token-0123456789"
UNKNOWN_TARGET = "no-such-target"


@dataclass
class Mailbox:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)

    def about(self, flow_run_id: str) -> list[EmailMessage]:
        return [m for m in self.messages if flow_run_id in str(m.get_content())]


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    """A real SMTP server on loopback that accepts one login and keeps what it is sent."""
    box = Mailbox(free_port())

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            raw = envelope.original_content or b""
            box.messages.append(email.message_from_bytes(raw, policy=email.policy.default))
            return "250 OK"

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        box.logins.append((mechanism, ok))
        return AuthResult(success=ok)

    controller = Controller(
        Handler(), hostname="127.0.0.1", port=box.port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    yield box
    controller.stop()


@dataclass
class Receiver:
    url: str
    calls: list[dict[str, Any]] = field(default_factory=list)

    def about(self, flow_run_id: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if flow_run_id in c["body"].get("run_url", "")]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    heard = Receiver(f"http://127.0.0.1:{port}/alerts?token={WEBHOOK_TOKEN}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            heard.calls.append(
                {"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(raw)}
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield heard
    server.shutdown()


async def automation_ids() -> set[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {a.id for a in await client.read_automations()}


@pytest.fixture(autouse=True)
def leave_automations_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """set_up_prefect also adds the missed-heartbeat automation to the shared server: what
    these tests added goes when they end."""
    if "prefect_server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("prefect_server")
    before = asyncio.run(automation_ids())
    yield

    async def remove_new() -> None:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            for added in await automation_ids() - before:
                await client.delete_automation(added)

    asyncio.run(remove_new())


NOTIFY_VARS = (
    "NOTIFY_WEBHOOK_URL",
    "NOTIFY_EMAIL_TO",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_SECURITY",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_FROM",
)


@pytest.fixture
def notify_env(monkeypatch: pytest.MonkeyPatch, smtp: Mailbox, receiver: Receiver) -> Iterator[None]:
    monkeypatch.setenv("NOTIFY_EMAIL_TO", "ops@example.org, oncall@example.org")
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("SMTP_SECURITY", "none")
    monkeypatch.setenv("SMTP_USERNAME", SMTP_USER)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("SMTP_FROM", "tenantform@example.org")
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", receiver.url)
    yield
    for name in NOTIFY_VARS:
        monkeypatch.delenv(name, raising=False)
    asyncio.run(ensure_failure_notifications([], Settings()))  # removes them


def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NOTIFY_VARS:
        monkeypatch.delenv(name, raising=False)


async def automations_named(name: str) -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return list(await client.read_automations_by_name(name))


async def block_names() -> set[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {b.name for b in await client.read_block_documents() if b.name}


async def fail_a_provision() -> tuple[str, FlowParameters]:
    """A provision run of an unknown target: the worker runs it and it fails at once."""
    from prefect.deployments.flow_runs import arun_deployment

    params = FlowParameters(
        run_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), target=UNKNOWN_TARGET, inputs={}
    )
    flow_run = await arun_deployment(
        "provision/provision",
        parameters=params.as_prefect_parameters(),
        tags=[f"client:{params.client_id}", f"target:{params.target}", f"run:{params.run_id}"],
        timeout=0,
    )
    return str(flow_run.id), params


async def crash_a_destroy() -> tuple[str, FlowParameters]:
    """A destroy run scheduled an hour ahead (no worker takes it), then Crashed through the
    API, as ``crash_orphaned_runs`` and the missed-heartbeat automation do."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed, Scheduled
    from prefect.types._datetime import now

    params = FlowParameters(run_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), target="local", inputs={})
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("destroy/destroy")
        flow_run = await client.create_flow_run_from_deployment(
            deployment.id,
            parameters=params.as_prefect_parameters(),
            state=Scheduled(scheduled_time=now("UTC") + timedelta(hours=1)),
        )
        await client.set_flow_run_state(
            flow_run.id, Crashed(message="the worker vanished (test)"), force=True
        )
    return str(flow_run.id), params


async def state_message(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_run = await client.read_flow_run(uuid.UUID(flow_run_id))
    assert flow_run.state is not None and flow_run.state.is_final()
    return flow_run.state.message or ""


def test_unset_settings_set_up_no_notifications(prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments.apply import set_up_prefect

    unset(monkeypatch)
    applied = asyncio.run(set_up_prefect())
    assert "failure notifications" not in applied
    assert asyncio.run(automations_named(FAILURE_AUTOMATION)) == []
    assert not {EMAIL_BLOCK, WEBHOOK_BLOCK} & asyncio.run(block_names())


def test_failed_and_crashed_runs_are_emailed_and_posted(
    prefect_server: str, notify_env: None, smtp: Mailbox, receiver: Receiver
) -> None:
    from prefect.settings import PREFECT_UI_URL

    from deployments.apply import set_up_prefect

    first = asyncio.run(set_up_prefect())
    second = asyncio.run(set_up_prefect())
    assert first["failure notifications"] == second["failure notifications"]
    assert "email to ops@example.org, oncall@example.org" in second["failure notifications"]
    automations = asyncio.run(automations_named(FAILURE_AUTOMATION))
    assert len(automations) == 1, "a second set-up must update the automation, not add one"
    assert {EMAIL_BLOCK, WEBHOOK_BLOCK} <= asyncio.run(block_names())
    stored = automations[0].model_dump_json()
    assert SMTP_PASSWORD not in stored and WEBHOOK_TOKEN not in stored

    ui = str(PREFECT_UI_URL.value()).rstrip("/")
    for make, operation, state in (
        (fail_a_provision, "provision", "Failed"),
        (crash_a_destroy, "destroy", "Crashed"),
    ):
        flow_run_id, params = asyncio.run(make())
        link = f"{ui}/runs/flow-run/{flow_run_id}"
        wait_until(
            lambda: len(smtp.about(flow_run_id)) == 2 and len(receiver.about(flow_run_id)) == 1,
            120,
            f"the notifications of the {state} {operation} run",
            interval=0.5,
        )
        reason = asyncio.run(state_message(flow_run_id))
        if operation == "provision":
            assert f"unknown target {UNKNOWN_TARGET!r}" in reason
        else:
            assert reason == "the worker vanished (test)"

        mails = smtp.about(flow_run_id)
        assert sorted(str(m["To"]) for m in mails) == ["oncall@example.org", "ops@example.org"]
        for mail in mails:
            assert mail["From"] == "tenantform@example.org"
            assert mail["Subject"] == f"tenantform: {operation} {state.lower()} for client {params.client_id}"
            body = str(mail.get_content())
            assert f"Client:    {params.client_id}" in body
            assert f"Operation: {operation}" in body
            assert f"Reason:    {reason}" in body
            assert f"Run:       {link}" in body
            assert f"Request:   {params.run_id}" in body

        (call,) = receiver.about(flow_run_id)
        assert call["path"] == f"/alerts?token={WEBHOOK_TOKEN}" and call["type"] == "application/json"
        assert {k: v for k, v in call["body"].items() if k != "flow_run"} == {
            "event": f"tenantform.run.{state.lower()}",
            "client_id": params.client_id,
            "operation": operation,
            "target": params.target,
            "state": state,
            "reason": reason,
            "run_url": link,
            "request_id": params.run_id,
            "text": f"tenantform: {operation} {state.lower()} for client {params.client_id}: {reason} {link}",
        }
    assert smtp.logins and all(ok for _, ok in smtp.logins), "every email logged in with the password"


async def deployment_ids() -> list[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return [str(d.id) for d in await client.read_deployments()]


def test_unsetting_removes_the_automation_and_its_blocks(
    prefect_server: str, notify_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = asyncio.run(deployment_ids())
    assert (
        asyncio.run(ensure_failure_notifications(ids))
        == "email to ops@example.org, oncall@example.org; webhook"
    )
    assert len(asyncio.run(automations_named(FAILURE_AUTOMATION))) == 1
    monkeypatch.delenv("NOTIFY_EMAIL_TO")
    assert asyncio.run(ensure_failure_notifications(ids)) == "webhook"
    assert EMAIL_BLOCK not in asyncio.run(block_names())
    assert len(asyncio.run(automations_named(FAILURE_AUTOMATION))) == 1
    unset(monkeypatch)
    assert asyncio.run(ensure_failure_notifications(ids)) is None
    assert asyncio.run(automations_named(FAILURE_AUTOMATION)) == []
    assert not {EMAIL_BLOCK, WEBHOOK_BLOCK} & asyncio.run(block_names())


def test_incomplete_email_settings_are_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    unset(monkeypatch)
    monkeypatch.setenv("NOTIFY_EMAIL_TO", "ops@example.org")
    with pytest.raises(ValueError, match="SMTP_HOST"):
        Settings().check_notifications()
    with pytest.raises(ValueError, match="SMTP_HOST"):  # where up and deploy set them up
        asyncio.run(ensure_failure_notifications([]))
    monkeypatch.setenv("SMTP_HOST", "smtp.example.org")
    with pytest.raises(ValueError, match="SMTP_FROM"):
        Settings().check_notifications()
    monkeypatch.setenv("SMTP_FROM", "tenantform@example.org")
    monkeypatch.setenv("SMTP_PASSWORD", "x")
    with pytest.raises(ValueError, match="SMTP_USERNAME"):
        Settings().check_notifications()


def test_smtp_url_quotes_the_login_and_chooses_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    unset(monkeypatch)
    settings = Settings(
        notify_email_to="a@example.org,b@example.org",
        smtp_host="smtp.example.org",
        smtp_username="me@example.org",
        smtp_password="p@ss/word",
        smtp_from="tenantform@example.org",
    )
    url = smtp_url(settings)
    assert url.startswith("mailtos://me%40example.org:p%40ss%2Fword@smtp.example.org:587/?")
    assert "mode=starttls" in url and "to=a%40example.org%2Cb%40example.org" in url
    assert smtp_url(settings.model_copy(update={"smtp_security": "none"})).startswith("mailto://")
