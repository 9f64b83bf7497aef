"""The reconciliation sweep: one flow run plans every client it is given (or the whole
fleet, asked of the gateway when Prefect's schedule starts it), as tasks inside that run:
a flow-run process per client would cost seconds of CPU each.

Each check holds the client's own lock (a client busy with its own run is skipped and
reported, never waited on) and one fleet slot. ``heal`` applies only a plan that creates
or updates in place and that the policies let through (operation ``heal``), and applies
exactly the plan it checked.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from prefect import flow, get_run_logger, task
from prefect.states import Completed

from flows import shards
from flows.contract import (
    DriftCheck,
    DriftStatus,
    Remediation,
    ResourceChange,
    SweepResult,
    SweepTarget,
    publish_sweep,
)
from flows.jobs import Job
from flows.locks import ClientBusy, client_lock
from flows.policy import PolicyDenied
from flows.settings import Settings, get_settings
from flows.tasks import TASK_OPTIONS, PolicyCheck, check_plan, unlocking

SAFE_ACTIONS = frozenset({"create", "update"})
"""What healing may apply; a plan with any other action (delete, replace) is reported."""


def fleet(settings: Settings) -> Iterator[SweepTarget]:
    """Every active client, from the gateway that owns the registry, a page at a time."""
    if not settings.gateway_url:
        raise RuntimeError("TENANTFORM_GATEWAY_URL is not set: a scheduled sweep asks it for the fleet")
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    with httpx.Client(base_url=settings.gateway_url, headers={"X-API-Key": key}, timeout=30) as client:
        for offset in itertools.count(0, 1000):
            page = client.get("/api/reconcile/fleet", params={"limit": 1000, "offset": offset})
            page.raise_for_status()
            targets = page.json()["clients"]
            yield from (SweepTarget.model_validate(t) for t in targets)
            if len(targets) < 1000:
                return


@task(name="check-client", task_run_name="check-{target.params.client_id}", **TASK_OPTIONS)
def check_client(target: SweepTarget) -> DriftCheck:
    """Plan one client; heal when its policy says so and the plan is safe."""
    settings = get_settings()
    params = target.params
    checked = DriftCheck(
        client_id=params.client_id, status=DriftStatus.unknown, checked_at=datetime.now(UTC), action="none"
    )
    job = Job.create(
        settings,
        params.client_id,
        params.target,
        params.inputs,
        run_id=params.run_id,
        revision=params.revision,
    )
    checked.module_version = job.revision
    log = get_run_logger().info
    try:
        with client_lock(params.client_id, settings.fleet_concurrency, wait=False) as job.previous_holder:
            job.prepare()
            terraform = job.terraform(log)
            terraform.init()
            plan_file = job.workspace.plan_path(f"reconcile-{params.run_id}")
            try:
                planned = unlocking(job, lambda tf: tf.plan(out=plan_file))
                checked.resources = ResourceChange.planned_by(planned)
                if planned.exit_code != 2:
                    checked.status = DriftStatus.in_sync
                    return checked
                checked.status = DriftStatus.drifted
                unsafe = sorted({r.action for r in checked.resources} - SAFE_ACTIONS)
                if target.remediation is not Remediation.heal:
                    checked.action = "reported"
                elif unsafe:
                    checked.action = "reported"
                    checked.reason = f"not healed: the plan would {' and '.join(unsafe)} resources"
                elif denial := _denied(job, plan_file, params.inputs, params.labels):
                    checked.action, checked.reason = "reported", f"not healed: {denial}"
                else:
                    terraform.apply_plan(plan_file)
                    outputs = terraform.output()
                    checked.outputs = {k: v.value for k, v in outputs.items() if not v.sensitive}
                    checked.status, checked.action = DriftStatus.in_sync, "healed"
            finally:
                plan_file.unlink(missing_ok=True)
    except ClientBusy as exc:
        checked.action, checked.reason = "skipped", str(exc)
    except Exception as exc:
        checked.status, checked.action = DriftStatus.unknown, "failed"
        checked.reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    return checked


def _denied(job: Job, plan_file: Any, inputs: dict[str, Any], labels: dict[str, str]) -> str:
    """Why the policies refuse to heal with this plan ("" when they let it be applied); a
    broken policy raises, and the check fails closed."""
    try:
        check_plan(job, plan_file, PolicyCheck(operation="heal", inputs=inputs, labels=labels))
    except PolicyDenied as exc:
        return str(exc)
    return ""


def batched(items: list[SweepTarget], size: int) -> Iterator[list[SweepTarget]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_all(targets: list[SweepTarget], settings: Settings) -> list[DriftCheck]:
    """Every target checked as a task of this flow run, ``fleet_concurrency`` at a time."""
    checks: list[DriftCheck] = []
    for batch in batched(targets, settings.fleet_concurrency):
        futures = [check_client.submit(t) for t in batch]
        checks.extend(f.result() for f in futures)
    return checks


@flow(name="reconcile", flow_run_name="reconcile-sweep", persist_result=True)
def reconcile(clients: list[SweepTarget] | None = None, shard_size: int | None = None) -> Any:
    """Plan every given client (the whole fleet when none are given); publish the checks.

    More clients than one shard (``SWEEP_SHARD_SIZE``, or ``shard_size``) fan out: each shard
    is a flow run of its own on the work pool (``reconcile-shard``), so every worker takes
    part. A scheduled sweep (no clients given) that finds another fleet sweep still running
    ends at once, Completed, saying so: sweeps never pile up behind a slow one."""
    settings = get_settings()
    logger = get_run_logger()
    if clients is None and (running := shards.fleet_sweep_running()):
        reason = f"skipped: the previous sweep (flow run {running}) is still running"
        logger.warning("%s", reason)
        return Completed(message=reason)
    targets = list(clients) if clients is not None else list(fleet(settings))
    size = shard_size or settings.sweep_shard_size
    sweep = SweepResult()
    if len(targets) <= size:
        logger.info("sweeping %d client(s), %d at a time", len(targets), settings.fleet_concurrency)
        sweep.checks = check_all(targets, settings)
    else:
        sweep.checks = shards.fan_out(list(batched(targets, size)))
    counts = {s.value: sum(c.status is s for c in sweep.checks) for s in DriftStatus}
    logger.info("sweep done: %s", counts)
    publish_sweep(sweep)
    return sweep.model_dump(mode="json")


@flow(name="reconcile-shard", flow_run_name="reconcile-shard-{shard}", persist_result=True)
def reconcile_shard(clients: list[SweepTarget], shard: int = 0) -> dict[str, Any]:
    """One shard of a sweep: its clients checked here, its checks published for the sweep
    that started it (``flows.shards``), which records them."""
    settings = get_settings()
    logger = get_run_logger()
    logger.info("shard %d: %d client(s), %d at a time", shard, len(clients), settings.fleet_concurrency)
    result = SweepResult(checks=check_all(list(clients), settings))
    shards.publish_shard(result)
    return result.model_dump(mode="json")
