"""The ``rollout`` flow: one wave at a time, plan every client of the wave against the new
revision (in this process, as a sweep plans), then upgrade the ones whose plans are
allowed through their normal provision runs, at most ``max_parallel`` open at once, and
ask the gateway for the wave's verdict (go on, pause, halt, done).

Everything the rollout knows is in the gateway's registry, so a flow run that dies is
replaced by another that carries on from the record: a resume starts one."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import PrefectFuture, as_completed

from flows.contract import FlowParameters, ResourceChange
from flows.jobs import Job
from flows.locks import ClientBusy, client_lock
from flows.rollouts.contract import (
    ClientStep,
    PlanOutcome,
    RolloutStatus,
    RolloutTarget,
    WaveStart,
    rollout_run_name,
)
from flows.rollouts.gateway import RolloutGateway
from flows.settings import get_settings
from flows.tasks import TASK_OPTIONS, unlocking
from flows.terraform.runner import Terraform

POLL_SECONDS = 1.0
"""How often a wave's open upgrade runs are looked at: a slot that frees is filled within this."""


class RolloutHalted(RuntimeError):
    """A wave's failures passed its tolerance: the flow run fails, so failure notifications
    go out; the rollout stays resumable."""


@task(name="plan-client", task_run_name="plan-{target.params.client_id}", **TASK_OPTIONS)
def plan_client(target: RolloutTarget, allow: list[str], busy_wait: float) -> PlanOutcome:
    """Plan one client against the revision it moves to; never applies anything."""
    settings = get_settings()
    params = target.params
    deadline = time.monotonic() + busy_wait
    saved: Path | None = None
    while True:
        try:
            job = Job.create(
                settings,
                params.client_id,
                params.target,
                params.inputs,
                run_id=params.run_id,
                revision=params.revision,
            )
            with client_lock(params.client_id, settings.fleet_concurrency, wait=False) as job.previous_holder:
                job.prepare()
                job.terraform(get_run_logger().info).init()
                saved = _saved_plan(job, params)
                planned = unlocking(job, partial(Terraform.plan, out=saved))
            break
        except ClientBusy as exc:
            if time.monotonic() >= deadline:
                return PlanOutcome(
                    step="skipped", reason=f"busy with a run of its own for {busy_wait:g}s ({exc})"
                )
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
        except Exception as exc:
            if saved is not None:
                saved.unlink(missing_ok=True)
            return PlanOutcome(step="failed", reason=f"plan failed: {type(exc).__name__}: {exc}"[:500])
    changes = ResourceChange.planned_by(planned)
    forbidden = [c for c in changes if c.action not in {*allow, "read", "noop"}]
    if forbidden:
        if saved is not None:
            saved.unlink(missing_ok=True)
        named = ", ".join(f"{c.action} {c.address}" for c in forbidden)
        return PlanOutcome(step="skipped", reason=f"the plan would {named}; not allowed", changes=changes)
    return PlanOutcome(step="planned", changes=changes)


def _saved_plan(job: Job, params: FlowParameters) -> Path | None:
    """Where the client's upgrade run finds this plan (when it runs on this worker)."""
    if params.rollout is None:
        return None
    return job.workspace.plan_path(params.rollout.plan_name(params.inputs, params.revision))


def _plan_wave(gateway: RolloutGateway, start: WaveStart) -> None:
    """``max_parallel`` plans at once, the next started as soon as one ends (a slow plan
    holds up no other), each outcome recorded as it comes."""
    pending = iter(c for c in start.clients if c.step is ClientStep.pending)
    running: dict[PrefectFuture[PlanOutcome], RolloutTarget] = {}
    while True:
        for target in itertools.islice(pending, max(0, start.max_parallel - len(running))):
            running[plan_client.submit(target, start.allow, start.busy_wait_seconds)] = target
        if not running:
            return
        done = next(as_completed(list(running)))
        gateway.planned(running.pop(done).params.client_id, done.result())


def _apply_wave(gateway: RolloutGateway, wave: int, max_parallel: int) -> None:
    """Upgrade runs for the planned clients, ``max_parallel`` open at once, until every
    client of the wave has settled. A paused or aborted rollout starts no more (the
    gateway answers such an upgrade with the client held or skipped)."""
    logger = get_run_logger()
    while True:
        steps = gateway.steps(wave)
        open_runs = sum(s["step"] == ClientStep.applying for s in steps.values())
        waiting = [cid for cid, s in steps.items() if s["step"] == ClientStep.planned]
        if not waiting and not open_runs:
            return
        for client_id in waiting[: max(0, max_parallel - open_runs)]:
            answer = gateway.upgrade(client_id)
            logger.info(
                "client %s: %s %s", client_id, answer["step"], answer.get("run_id") or answer["reason"]
            )
        time.sleep(POLL_SECONDS)


def publish_wave(rollout_id: str, wave: dict[str, Any]) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        key=f"rollout-{rollout_id}-wave-{wave['index']}".lower(),
        table=[
            {
                "client": c["client_id"],
                "step": c["step"],
                "from": c.get("from_revision") or "-",
                "to": c.get("to_revision") or "-",
                "changes": ", ".join(f"{r['action']} {r['address']}" for r in c.get("changes") or []) or "-",
                "run": c.get("run_id") or "-",
                "reason": c.get("reason") or "-",
            }
            for c in wave["clients"]
        ],
        description=f"rollout {rollout_id}, wave {wave['index'] + 1} ({wave['name'] or 'unnamed'}): "
        f"{wave['status']}",
    )


def _name() -> str:
    from prefect.runtime import flow_run

    return rollout_run_name(str(flow_run.parameters["rollout_id"]))


@flow(name="rollout", flow_run_name=_name, persist_result=True)
def rollout(rollout_id: str) -> dict[str, Any]:
    """Carry a rollout on from where its record says it is."""
    logger = get_run_logger()
    gateway = RolloutGateway(get_settings(), rollout_id)
    try:
        wave: int | None = int(gateway.view()["current_wave"])
        while wave is not None:
            start = gateway.start_wave(wave)
            if not start.go:
                logger.info("rollout %s stops before wave %d: %s", rollout_id, wave + 1, start.reason)
                return {"rollout_id": rollout_id, "status": "stopped", "message": start.reason}
            logger.info("wave %d (%s): %d client(s)", wave + 1, start.name or "unnamed", len(start.clients))
            _plan_wave(gateway, start)
            _apply_wave(gateway, wave, start.max_parallel)
            end = gateway.end_wave(wave)
            publish_wave(rollout_id, gateway.view()["waves"][wave])
            logger.info("wave %d: %s", wave + 1, end.message)
            if end.status is RolloutStatus.halted:
                raise RolloutHalted(end.message)
            if end.status is not RolloutStatus.running:
                return {"rollout_id": rollout_id, "status": end.status.value, "message": end.message}
            if end.pause_seconds:
                time.sleep(end.pause_seconds)
            wave = end.next_wave
        return {"rollout_id": rollout_id, "status": "completed", "at": datetime.now(UTC).isoformat()}
    finally:
        gateway.close()
