"""``tenantform doctor``: what a run needs, checked from here, each with how to fix it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from deployments.worker import NotReady, check_data_dir, check_prefect, check_state_backend, check_terraform
from flows.settings import get_settings


@dataclass
class Finding:
    check: str
    status: str  # ok, warning, error
    detail: str


def _probe(check: str, run: Callable[[], object]) -> Finding:
    try:
        return Finding(check, "ok", str(run()))
    except NotReady as exc:
        return Finding(check, "error", str(exc))
    except Exception as exc:
        return Finding(check, "error", f"{type(exc).__name__}: {exc}")


def _gateway() -> str:
    url = get_settings().cli_gateway_url
    try:
        answer = httpx.get(f"{url}/health", timeout=10)
    except httpx.HTTPError as exc:
        raise NotReady(
            f"no gateway at {url} ({type(exc).__name__}); start it or set TENANTFORM_URL"
        ) from None
    checks = answer.json().get("checks", {})
    if answer.status_code != 200:
        raise NotReady(f"{url} is unhealthy: {checks}")
    return f"{url}: {checks}"


def _credentials() -> list[Finding]:
    """Which clouds of the catalogue this machine could build on (warnings: a cloud not
    set up is fine; the embedded localcloud needs no account)."""
    from flows.clouds.errors import PreflightError
    from flows.targets import Credentials, all_targets

    settings = get_settings()
    accounts: dict[str, Credentials] = {}
    for target in all_targets().values():
        if target.credentials is not None:
            accounts.setdefault(target.credentials.name, target.credentials)
    found = []
    for name, account in accounts.items():
        try:
            found.append(Finding(name, "ok", account.check(settings)))
        except PreflightError as exc:
            found.append(Finding(name, "warning", str(exc)))
    return found


def _policies() -> str:
    """The built-ins and POLICY_DIR parse (a broken one would fail every run closed)."""
    from flows.policy import PolicySet

    dirs = get_settings().policy_dirs
    policies = PolicySet.load(dirs)
    policies.engine()
    return f"{len(policies.policies)} policies from {', '.join(str(d) for d in dirs)}"


def diagnose() -> list[Finding]:
    settings = get_settings()
    return [
        _probe("Terraform", lambda: check_terraform(settings)),
        _probe("data dir", lambda: check_data_dir(settings)),
        _probe("state backend", lambda: check_state_backend(settings)),
        _probe("policies", _policies),
        _probe("Prefect API", lambda: check_prefect(os.environ.get("PREFECT_API_URL"))),
        _probe("gateway", _gateway),
        *_credentials(),
    ]
