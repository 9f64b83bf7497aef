"""Applies the workflow catalogue (``prefect.yaml``) to a Prefect server from Python.

Flows are deployed by module path: a worker imports them from the installed project,
so no code is copied or pulled and the same entry works on any machine with the package.
"""

from __future__ import annotations

import importlib
import logging
from datetime import timedelta

from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.exceptions import ObjectAlreadyExists
from prefect.flows import Flow
from prefect.states import Crashed
from prefect.types.entrypoint import EntrypointType

from deployments.notifications import ensure_failure_notifications
from flows.locks import FLEET_LIMIT, aensure_limit
from flows.settings import get_settings
from flows.workflows import Workflow, workflows

log = logging.getLogger(__name__)


def load_flow(entry: Workflow) -> Flow[..., object]:
    path, attr = entry.entrypoint.rsplit(".", 1)
    found = getattr(importlib.import_module(path), attr)
    assert isinstance(found, Flow), f"{entry.entrypoint} is not a flow"
    return found


async def ensure_work_pool(name: str) -> None:
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            log.info("created work pool %s", name)
        except ObjectAlreadyExists:
            pass


async def apply_deployments(extra_job_env: dict[str, str] | None = None) -> dict[str, str]:
    """Create or update every deployment; returns ``flow/deployment`` -> id. ``extra_job_env``
    is added to the environment of every run (the worker's own environment comes first)."""
    applied: dict[str, str] = {}
    settings = get_settings()
    for entry in workflows().values():
        await ensure_work_pool(entry.work_pool)
        flow = load_flow(entry)
        deployment: RunnerDeployment = await flow.ato_deployment(
            name=entry.name,
            description=entry.description,
            tags=list(entry.tags),
            work_pool_name=entry.work_pool,
            job_variables={**entry.job_variables, "env": extra_job_env}
            if extra_job_env
            else entry.job_variables,
            entrypoint_type=EntrypointType.MODULE_PATH,
            cron=(settings.reconcile_cron or entry.cron) if entry.cron else None,
        )
        deployment_id = await deployment.apply()  # type: ignore[misc]  # sync_compatible
        applied[entry.deployment_name] = str(deployment_id)
    return applied


ZOMBIE_AUTOMATION = "tenantform: crash flow runs whose heartbeat stopped"


async def ensure_zombie_automation(within_seconds: int | None = None) -> None:
    """A run whose worker died with it never reports an end: Prefect's own remedy is a
    proactive automation that crashes a flow run after missed heartbeats (workers send
    them when PREFECT_FLOWS_HEARTBEAT_FREQUENCY is set), here after HEARTBEAT_LOST_SECONDS
    unless ``within_seconds`` says otherwise. The gateway then reports the request failed
    with this message."""
    if within_seconds is None:
        within_seconds = get_settings().heartbeat_lost_seconds
    async with get_client() as client:
        for existing in await client.read_automations_by_name(ZOMBIE_AUTOMATION):
            await client.delete_automation(existing.id)
    await Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                # A run suspended for approval has no process and sends no heartbeat.
                "prefect.flow-run.Suspended",
                "prefect.flow-run.Paused",
            },
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"worker lost: no heartbeat for {within_seconds}s (its process died)",
            )
        ],
    ).acreate()


ORPHANED = "the stack stopped while this run was running (its process is gone); retry the client"


async def crash_orphaned_runs(work_pool: str) -> list[str]:
    """Mark Crashed every run of the pool that Prefect believes is running: called by
    ``tenantform up`` before it starts its worker, when no process of the pool can exist."""
    crashed: list[str] = []
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(
                        any_=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING]
                    )
                )
            ),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool])),
        )
        for flow_run in runs:
            await client.set_flow_run_state(flow_run.id, Crashed(message=ORPHANED), force=True)
            crashed.append(flow_run.name)
    return crashed


async def set_up_prefect() -> dict[str, str]:
    """Everything ``tenantform up`` sets up on a Prefect server, for one that runs elsewhere:
    the deployments (and their pool), the missed-heartbeat automation, the fleet limit, and
    the failure notifications the settings ask for."""
    applied = await apply_deployments()
    deployment_ids = list(applied.values())
    await ensure_zombie_automation()
    applied["automation"] = ZOMBIE_AUTOMATION
    if notified := await ensure_failure_notifications(deployment_ids):
        applied["failure notifications"] = notified
    settings = get_settings()
    await aensure_limit(FLEET_LIMIT, settings.fleet_concurrency)
    applied["concurrency limit"] = f"{FLEET_LIMIT} = {settings.fleet_concurrency}"
    return applied
