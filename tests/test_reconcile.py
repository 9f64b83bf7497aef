"""Reconciliation with a real worker, real Terraform and localcloud: a sweep reports drift,
heals only what creates or updates in place, skips a busy client without waiting, and
Prefect's own scheduler starts the sweep, which asks a real gateway for the fleet."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port, gateway_env, http_ok, start_gateway, stop_process, wait_until
from tests.test_day_two import instance_ids, provisioned, wait_run

pytestmark = pytest.mark.usefixtures("worker")

INSTANCES = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud" / "instances"


def checked(gateway: Any, cid: str, before: int, timeout: float = 150) -> dict[str, Any]:
    """The drift report once a sweep newer than the ``before``-th check is recorded."""
    deadline = time.monotonic() + timeout
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        report = gateway.get(f"/api/clients/{cid}/drift").json()
        if len(report["history"]) > before:
            return report
        time.sleep(0.5)
    raise TimeoutError(f"no new check of {cid} after {timeout}s: {report}")


def sweep(gateway: Any, cid: str) -> dict[str, Any]:
    before = len(gateway.get(f"/api/clients/{cid}/drift").json()["history"])
    accepted = gateway.post(f"/api/clients/{cid}/reconcile")
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["clients"] == 1
    return checked(gateway, cid, before)


def test_drift_is_reported_healed_when_safe_and_a_replace_is_never_applied(gateway: Any) -> None:
    cid = provisioned(gateway, "drifty", 2)
    first = gateway.get(f"/api/clients/{cid}/drift").json()
    assert first["status"] == "unknown" and first["history"] == [] and first["remediation"] == "report"

    assert sweep(gateway, cid)["status"] == "in_sync"

    ids = instance_ids(gateway, cid)
    (INSTANCES / f"{ids[0]}.json").unlink()  # deleted out of band
    report = sweep(gateway, cid)
    assert report["status"] == "drifted", report
    assert report["resources"] == [{"address": "localcloud_instance.this[0]", "action": "create"}]
    assert report["history"][0]["action"] == "reported"
    assert not (INSTANCES / f"{ids[0]}.json").exists(), "report never changes anything"
    listed = gateway.get("/api/clients", params={"drift": "drifted"}).json()["clients"]
    assert cid in [c["client_uuid"] for c in listed]
    assert gateway.get(f"/api/clients/{cid}/status").json()["drift"]["status"] == "drifted"

    assert gateway.put(f"/api/clients/{cid}/settings", json={"remediation": "heal"}).status_code == 200
    healed = sweep(gateway, cid)
    assert healed["status"] == "in_sync" and healed["history"][0]["action"] == "healed", healed
    now = instance_ids(gateway, cid)
    assert len(now) == 2 and ids[1] in now and all((INSTANCES / f"{i}.json").exists() for i in now)

    renamed = INSTANCES / f"{now[1]}.json"
    stored = json.loads(renamed.read_text())
    stored["name"] = "renamed-out-of-band"  # name forces a replacement
    renamed.write_text(json.dumps(stored))
    refused = sweep(gateway, cid)
    assert refused["status"] == "drifted", refused
    assert refused["history"][0]["action"] == "reported"
    assert "replace" in refused["reason"]
    assert json.loads(renamed.read_text())["name"] == "renamed-out-of-band", "a replace is never applied"
    assert [h["status"] for h in refused["history"]] == ["drifted", "in_sync", "drifted", "in_sync"]


def test_a_client_busy_with_its_own_run_is_skipped_not_waited_on(gateway: Any) -> None:
    cid = provisioned(gateway, "busy")
    slow = gateway.patch(f"/api/clients/{cid}", json={"instance_name_prefix": "slow-busy"}).json()
    from tests.test_day_two import _wait_for_task

    _wait_for_task(gateway, slow["request_id"], "terraform-apply")
    started = time.monotonic()
    report = sweep(gateway, cid)
    assert report["history"][0]["action"] == "skipped" and "busy" in report["history"][0]["reason"]
    assert report["status"] == "unknown", "a skipped check keeps the last finding (none yet)"
    assert time.monotonic() - started < 100, "the sweep waited for the client's run"
    gateway.post(f"/api/runs/{slow['request_id']}/cancel")
    assert wait_run(gateway, slow["request_id"])["status"] == "cancelled"


def test_prefect_schedule_starts_a_sweep_that_asks_the_gateway_for_the_fleet(
    tmp_path: Path, prefect_server: str
) -> None:
    """The reconcile deployment re-applied with a schedule every minute; the scheduled run
    has no parameters, so it reads the fleet from a real gateway over HTTP."""
    from deployments.apply import apply_deployments

    key, port = "sweep-key-0123456789", free_port()
    gateway_proc = start_gateway(gateway_env(tmp_path, prefect_server, key), port, tmp_path / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/health"), 60, "the gateway")
        gateway = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10)
        cid = provisioned(gateway, "scheduled")
        (INSTANCES / f"{instance_ids(gateway, cid)[0]}.json").unlink()
        os.environ["RECONCILE_CRON"] = "* * * * *"
        from flows.settings import get_settings

        get_settings.cache_clear()
        asyncio.run(
            apply_deployments(
                extra_job_env={"TENANTFORM_GATEWAY_URL": url, "API_KEY": key, "RECONCILE_CRON": "* * * * *"}
            )
        )
        report = checked(gateway, cid, 0, timeout=150)
        assert report["status"] == "drifted", report
        assert report["resources"][0]["action"] == "create"
        fleet = gateway.get("/api/reconcile/fleet").json()
        assert fleet["total"] == 1 and fleet["clients"][0]["params"]["client_id"] == cid
    finally:
        os.environ.pop("RECONCILE_CRON", None)
        from flows.settings import get_settings

        get_settings.cache_clear()
        asyncio.run(apply_deployments())  # back to prefect.yaml's schedule
        stop_process(gateway_proc)
