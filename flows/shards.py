"""A sweep's shards: each a flow run of its own on the work pool (deployment
``reconcile-shard``), so every worker plans part of the fleet.

The sweep starts them with ``run_deployment`` (an idempotency key per shard: the sweep's
flow run and the shard's index, so a retried sweep never starts a shard twice), waits for
them all, and reads each one's checks from the artifact it publishes (``SHARD_KEY``: an
artifact lives on the Prefect server, so a sweep on another machine reads it). A shard that
did not complete (crashed, failed, cancelled) or published nothing has its clients
reported ``unknown``, action ``failed``, the reason naming its flow run and its state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort

from flows.contract import DriftCheck, DriftStatus, Operation, SweepResult, SweepTarget, read_sweep

SHARD_KEY = "reconcile-shard"
"""The artifact holding a shard's checks as JSON (the sweep's own is ``SWEEP_KEY``)."""
SHARDS_TABLE_KEY = "reconcile-shards"
"""The sweep's table of its shards: shard, flow run, clients, state."""
POLL_SECONDS = 2.0
SWEEP_FLOW = "reconcile"


@dataclass
class Shard:
    index: int
    targets: list[SweepTarget]
    flow_run_id: str
    state: str = "Scheduled"
    message: str = ""
    completed: bool = False


def fan_out(groups: list[list[SweepTarget]], poll: float = POLL_SECONDS) -> list[DriftCheck]:
    """Start one flow run per group, wait for them all, and return their checks in order."""
    from prefect import get_run_logger
    from prefect.deployments import run_deployment
    from prefect.runtime import flow_run

    from flows.workflows import workflow

    logger = get_run_logger()
    parent = flow_run.id or uuid4().hex
    deployment = workflow(Operation.reconcile_shard).deployment_name
    started: list[Shard] = []
    for index, group in enumerate(groups):
        run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync here: a sync flow
            deployment,
            parameters={"clients": [t.model_dump(mode="json") for t in group], "shard": index},
            timeout=0,
            idempotency_key=f"{parent}-shard-{index}",
            tags=["sweep-shard", f"sweep:{parent}"],
        )
        started.append(Shard(index, group, str(run.id)))
    logger.info(
        "sweeping %d client(s) in %d shard(s) of up to %d on the work pool",
        sum(len(g) for g in groups),
        len(groups),
        max(len(g) for g in groups),
    )
    _publish_table(started)
    _wait(started, poll)
    _publish_table(started)
    checks = _collect(started)
    if ended := [s for s in started if not s.completed]:
        logger.warning(
            "%d shard(s) did not complete: %s",
            len(ended),
            "; ".join(f"shard {s.index} ({s.flow_run_id}) {s.state}" for s in ended),
        )
    return checks


def _wait(shards: list[Shard], poll: float) -> None:
    waiting = {s.flow_run_id: s for s in shards}
    while waiting:
        found = {str(r.id): r for r in _read_flow_runs(list(waiting))}
        for flow_run_id, shard in list(waiting.items()):
            run = found.get(flow_run_id)
            if run is None:
                shard.state, shard.message = "Deleted", "no longer exists in Prefect"
                del waiting[flow_run_id]
                continue
            if run.state is None:
                continue
            shard.state = run.state.name or run.state.type.value.title()
            shard.message = _one_line(run.state.message)
            if run.state.is_final():
                shard.completed = run.state.type == StateType.COMPLETED
                del waiting[flow_run_id]
        if waiting:
            time.sleep(poll)


def _read_flow_runs(ids: list[str]) -> list[FlowRun]:
    """A page at a time: Prefect answers at most PREFECT_SERVER_API_DEFAULT_LIMIT a call."""
    runs: list[FlowRun] = []
    wanted = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in ids]))
    with get_client(sync_client=True) as client:
        while len(runs) < len(ids):
            page = client.read_flow_runs(flow_run_filter=wanted, sort=FlowRunSort.ID_DESC, offset=len(runs))
            if not page:
                break
            runs.extend(page)
    return runs


def _collect(shards: list[Shard]) -> list[DriftCheck]:
    published: dict[str, SweepResult] = {}
    done = [UUID(s.flow_run_id) for s in shards if s.completed]
    if done:
        wanted = ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=done), key=ArtifactFilterKey(any_=[SHARD_KEY])
        )
        artifacts: list[Any] = []
        with get_client(sync_client=True) as client:
            while page := client.read_artifacts(artifact_filter=wanted, offset=len(artifacts)):
                artifacts.extend(page)
        for artifact in artifacts:
            if artifact.flow_run_id is not None and isinstance(artifact.data, str):
                published[str(artifact.flow_run_id)] = read_sweep(artifact.data)
    checks: list[DriftCheck] = []
    for shard in shards:
        result = published.get(shard.flow_run_id)
        by_client = {c.client_id: c for c in result.checks} if result else {}
        for target in shard.targets:
            check = by_client.get(target.params.client_id)
            checks.append(check if check is not None else _unchecked(target, shard, result is not None))
    return checks


def _unchecked(target: SweepTarget, shard: Shard, published: bool) -> DriftCheck:
    if not shard.completed:
        how = f"ended {shard.state}" + (f": {shard.message}" if shard.message else "")
    elif published:
        how = "completed without checking this client"
    else:
        how = "completed but published no checks"
    return DriftCheck(
        client_id=target.params.client_id,
        status=DriftStatus.unknown,
        checked_at=datetime.now(UTC),
        action="failed",
        reason=f"not checked: shard {shard.index} (flow run {shard.flow_run_id}) {how}"[:500],
    )


def _publish_table(shards: list[Shard]) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        key=SHARDS_TABLE_KEY,
        table=[
            {
                "shard": s.index,
                "flow run": s.flow_run_id,
                "clients": len(s.targets),
                "state": s.state + (f" ({s.message})" if s.message and not s.completed else ""),
            }
            for s in shards
        ],
        description=f"the sweep's {len(shards)} shard(s)",
    )


def publish_shard(result: SweepResult) -> None:
    """The shard's checks as JSON, for the sweep that started it."""
    from prefect.artifacts import create_markdown_artifact

    from flows.contract import sweep_markdown

    create_markdown_artifact(
        key=SHARD_KEY, markdown=sweep_markdown(result), description="the shard's checks (JSON)"
    )


def fleet_sweep_running() -> str | None:
    """Another fleet sweep's flow run (no clients given, or more than one) that is Running or
    Pending, if any; this flow run's own is never one."""
    from prefect.runtime import flow_run

    me = flow_run.id
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[SWEEP_FLOW])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
                )
            ),
            limit=50,
        )
    for run in runs:
        clients: Any = (run.parameters or {}).get("clients")
        if str(run.id) != me and (clients is None or len(clients) > 1):
            return str(run.id)
    return None


def _one_line(message: str | None) -> str:
    text = (message or "").strip()
    return text.splitlines()[0][:300] if text else ""
