"""Failure notifications: an email and a webhook call when a tenantform flow run fails or
crashes, naming the client, the operation, the reason and the run's link.

Prefect sends them itself (an automation whose actions are notification blocks), so they
go out whether or not the gateway is up, and from any Prefect server: no class of ours has
to be importable there. That is why the email goes through Prefect's built-in
``SlackWebhook`` block: it is the one built-in block that hands an arbitrary Apprise URL to
Apprise (a ``mailto://`` URL is plain SMTP to any host and port); Prefect has no SMTP block
of its own. Secrets (the SMTP password, a webhook URL's token) live in the blocks' secret
fields, never in the automation, whose templates only read the run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import quote, urlencode
from uuid import UUID

from prefect.automations import AutomationCore
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_UI_URL
from prefect.types import SecretDict
from pydantic import SecretStr

from flows.settings import Settings

FAILURE_AUTOMATION = "tenantform: notify when a run fails or crashes"
EMAIL_BLOCK = "tenantform-failure-email"
WEBHOOK_BLOCK = "tenantform-failure-webhook"


def smtp_url(settings: Settings) -> str:
    """The Apprise ``mailto`` URL: SMTP to ``SMTP_HOST:SMTP_PORT``, plain-text mail."""
    assert settings.smtp_host and settings.smtp_from
    login = ""
    if settings.smtp_username:
        login = quote(settings.smtp_username, safe="")
        if settings.smtp_password:
            login += ":" + quote(settings.smtp_password.get_secret_value(), safe="")
        login += "@"
    query = urlencode(
        {
            "smtp": settings.smtp_host,
            "from": settings.smtp_from,
            "to": ",".join(settings.email_recipients),
            "mode": {"none": "insecure"}.get(settings.smtp_security, settings.smtp_security),
            "format": "text",
        }
    )
    scheme = "mailto" if settings.smtp_security == "none" else "mailtos"
    return f"{scheme}://{login}{settings.smtp_host}:{settings.smtp_port}/?{query}"


def ui_base_url() -> str:
    """Prefect's UI, as the process that sets Prefect up reaches it (``PREFECT_UI_URL``,
    derived from ``PREFECT_API_URL`` unless set): the server's own ``ui_url`` filter knows
    no URL when the server was started without one."""
    base = (PREFECT_UI_URL.value() or "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"PREFECT_UI_URL {base!r} cannot name a run's link")
    return base


# Jinja rendered by Prefect's server for each triggering event; ``flow_run`` and
# ``deployment`` are the run and deployment the event names. Reads only the run's
# identifiers and state message: flow parameters never hold secrets (flows/contract.py),
# and only client_id, target and run_id are printed.
_PRELUDE = """\
{%- set p = flow_run.parameters.params -%}
{%- set operation = deployment.name or flow.name -%}
{%- set run_url = UI ~ "/runs/flow-run/" ~ flow_run.id -%}
"""

SUBJECT = (
    _PRELUDE
    + "tenantform: {{ operation }} {{ flow_run.state.name|lower }}"
    + ' for client {{ p.client_id or "-" }}'
)

EMAIL_BODY = (
    _PRELUDE
    + """A tenantform run ended {{ flow_run.state.name }}.

Client:    {{ p.client_id or "-" }}
Operation: {{ operation }}
Target:    {{ p.target or "-" }}
Reason:    {{ flow_run.state.message or "(no message)" }}
Run:       {{ run_url }}
Request:   {{ p.run_id or "-" }}
Flow run:  {{ flow_run.name }}
"""
)

WEBHOOK_BODY = (
    _PRELUDE
    + """{
  "event": {{ ("tenantform.run." ~ flow_run.state.name|lower)|tojson }},
  "client_id": {{ (p.client_id or none)|tojson }},
  "operation": {{ (operation or none)|tojson }},
  "target": {{ (p.target or none)|tojson }},
  "state": {{ flow_run.state.name|tojson }},
  "reason": {{ flow_run.state.message|tojson }},
  "run_url": {{ run_url|tojson }},
  "request_id": {{ (p.run_id or none)|tojson }},
  "flow_run": {{ flow_run.name|tojson }},
  "text": {{ ("tenantform: " ~ operation ~ " " ~ flow_run.state.name|lower ~ " for client "
              ~ (p.client_id or "-") ~ ": " ~ (flow_run.state.message or "") ~ " " ~ run_url)|tojson }}
}"""
)


def _with_ui(template: str, ui: str) -> str:
    """The template with the UI's base URL set (a JSON string is a Jinja string literal)."""
    return "{%- set UI = " + json.dumps(ui) + " -%}\n" + template


def failure_trigger(deployment_ids: Iterable[str]) -> EventTrigger:
    """Each Failed or Crashed event of a flow run of one of these deployments."""
    return EventTrigger(
        expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={
            "prefect.resource.role": "deployment",
            "prefect.resource.id": [f"prefect.deployment.{d}" for d in sorted(deployment_ids)],
        },
        for_each={"prefect.resource.id"},
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(0),
    )


async def _save(block: Block, name: str) -> UUID:
    return await block.asave(name, overwrite=True)


async def _delete_block(cls: type[Block], name: str) -> None:
    with contextlib.suppress(ValueError, ObjectNotFound):
        await cls.adelete(name)


async def _put_automation(automation: AutomationCore) -> None:
    """Create it, or update the one of that name in place (and drop duplicates)."""
    async with get_client() as client:
        existing = await client.read_automations_by_name(automation.name)
        if not existing:
            await client.create_automation(automation)
            return
        first, *extra = existing
        assert first.id is not None
        await client.update_automation(first.id, automation)
        for other in extra:
            await client.delete_automation(other.id)


async def _delete_automation(name: str) -> None:
    async with get_client() as client:
        for existing in await client.read_automations_by_name(name):
            await client.delete_automation(existing.id)


async def ensure_failure_notifications(
    deployment_ids: Iterable[str], settings: Settings | None = None
) -> str | None:
    """Save the blocks and the automation the settings (NOTIFY_*, SMTP_*) ask for, remove what
    they no longer ask for; returns what is sent (for ``tenantform up`` to print), None when
    nothing is. Half-set email settings are refused (a ValueError naming the variable)."""
    settings = settings or Settings()  # read now, as up/deploy find the environment
    settings.check_notifications()
    deployment_ids = list(deployment_ids)
    ui = ui_base_url() if settings.email_recipients or settings.notify_webhook_url else ""
    subject = _with_ui(SUBJECT, ui)
    actions: list[SendNotification] = []
    sent: list[str] = []
    if settings.email_recipients:
        email = SlackWebhook(url=SecretStr(smtp_url(settings)))
        actions.append(
            SendNotification(
                block_document_id=await _save(email, EMAIL_BLOCK),
                subject=subject,
                body=_with_ui(EMAIL_BODY, ui),
            )
        )
        sent.append(f"email to {', '.join(settings.email_recipients)}")
    if settings.notify_webhook_url:
        webhook = CustomWebhookNotificationBlock(
            name=WEBHOOK_BLOCK,
            url="{{webhook_url}}",
            form_data="{{body}}",
            headers={"Content-Type": "application/json"},
            secrets=SecretDict({"webhook_url": settings.notify_webhook_url.get_secret_value()}),
        )
        actions.append(
            SendNotification(
                block_document_id=await _save(webhook, WEBHOOK_BLOCK),
                subject=subject,
                body=_with_ui(WEBHOOK_BODY, ui),
            )
        )
        sent.append("webhook")
    if actions and deployment_ids:
        await _put_automation(
            AutomationCore(
                name=FAILURE_AUTOMATION,
                description="Email and/or webhook on every Failed or Crashed run of tenantform's"
                " deployments (NOTIFY_EMAIL_TO, NOTIFY_WEBHOOK_URL).",
                trigger=failure_trigger(deployment_ids),
                actions=list(actions),
            )
        )
    else:
        await _delete_automation(FAILURE_AUTOMATION)
    if not settings.email_recipients:
        await _delete_block(SlackWebhook, EMAIL_BLOCK)
    if not settings.notify_webhook_url:
        await _delete_block(CustomWebhookNotificationBlock, WEBHOOK_BLOCK)
    return "; ".join(sent) if actions and deployment_ids else None
