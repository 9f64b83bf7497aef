"""The gateway's only door to Prefect: create flow runs from deployments, read their
states, results (as artifacts), tasks and logs. A client is opened per call because a
Prefect client is bound to the event loop it was opened on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import DeploymentFlowRunCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
    TaskRunFilter,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort, LogSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Cancelled, Cancelling, Scheduled, to_state_create

from flows import prefect_adapter
from flows.contract import (
    SWEEP_KEY,
    Operation,
    RunResult,
    SweepResult,
    SweepTarget,
    progress_key,
    read_progress,
    read_published,
    read_sweep,
    result_key,
)
from flows.locks import aensure_limit, client_limit_name
from flows.terraform.events import ApplyProgress


@dataclass(frozen=True)
class LogLine:
    id: str
    timestamp: datetime
    level: str
    message: str


WORKER_SEEN_SECONDS = 90.0
"""A worker heartbeats every 30 s by default: three missed and it is taken for gone."""
HEALTH_SECONDS = 5.0
"""A health check (a probe, a stream's first check) waits this long on Prefect: one that
accepts connections but never answers is down, not a hung probe."""
CANCELLING_BOUND = 30.0
"""Seconds a never-started run may stay Cancelling before it is Cancelled outright."""


@dataclass(frozen=True)
class FlowRunView:
    id: str
    state_type: str
    state_name: str
    message: str
    waiting_since: datetime | None = None
    """When the run entered its current state (for Scheduled, no earlier than it was due)."""

    @property
    def completed(self) -> bool:
        return self.state_type == "COMPLETED"

    @property
    def failed(self) -> bool:
        return self.state_type in ("FAILED", "CRASHED")

    @property
    def cancelled(self) -> bool:
        return self.state_type == "CANCELLED"

    @property
    def paused(self) -> bool:
        """Suspended (or paused) waiting for input: no process runs it."""
        return self.state_type == "PAUSED"

    def late_by(self, now: datetime) -> float:
        """How long a Scheduled run has waited for a worker to take it."""
        return self._in_state_for("SCHEDULED", now)

    def pending_for(self, now: datetime) -> float:
        """How long a worker has held the run without starting its process: a worker
        killed between taking a run and starting it leaves it Pending for good (no
        process, so no heartbeat and no crash)."""
        return self._in_state_for("PENDING", now)

    def _in_state_for(self, state_type: str, now: datetime) -> float:
        if self.state_type != state_type or self.waiting_since is None:
            return 0.0
        return (now - self.waiting_since).total_seconds()


def _since(entered: datetime | None, due: datetime | None) -> datetime | None:
    present = [t for t in (entered, due) if t is not None]
    return max(present) if present else None


def one_line(message: str | None) -> str:
    """Prefect's state messages can span lines and carry a generic prefix."""
    text = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    for prefix in ("Flow run encountered an exception: ", "Task run encountered an exception: "):
        text = text.removeprefix(prefix)
    return text[:500]


class PrefectGateway:
    KNOWN_LIMITS = 10_000

    def __init__(self) -> None:
        self._deployment_ids: dict[str, UUID] = {}
        self._known_limits: OrderedDict[str, None] = OrderedDict()

    async def ensure_client_limit(self, client_id: str) -> None:
        """The client's concurrency limit, made before its first flow run so the run
        takes its slot in one call; remembered (bounded) so later runs cost nothing."""
        name = client_limit_name(client_id)
        if name in self._known_limits:
            self._known_limits.move_to_end(name)
            return
        await aensure_limit(name, 1)
        self._known_limits[name] = None
        if len(self._known_limits) > self.KNOWN_LIMITS:
            self._known_limits.popitem(last=False)

    async def _deployment_id(self, client: PrefectClient, deployment: str) -> UUID:
        if deployment not in self._deployment_ids:
            self._deployment_ids[deployment] = (await client.read_deployment_by_name(deployment)).id
        return self._deployment_ids[deployment]

    async def healthy(self, within: float = HEALTH_SECONDS) -> str | None:
        """None when Prefect answers within ``within`` seconds, else why not."""
        try:
            async with asyncio.timeout(within), get_client() as client:
                error = await client.api_healthcheck()
        except TimeoutError:
            return f"no answer within {within:g} s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if error is None else f"{type(error).__name__}: {error}"

    async def create_flow_run(
        self, deployment: str, parameters: dict[str, Any], *, idempotency_key: str, tags: list[str]
    ) -> str:
        """Idempotent: the same key returns the same flow run, so a retry after a lost
        answer never runs Terraform twice."""
        create = DeploymentFlowRunCreate(
            parameters=parameters,
            state=to_state_create(Scheduled()),
            tags=tags,
            idempotency_key=idempotency_key,
        )
        async with get_client() as client:
            deployment_id = await self._deployment_id(client, deployment)
            # What create_flow_run_from_deployment sends, retried quickly on a 503 (safe:
            # the idempotency key makes a second create return the first flow run).
            path = f"/deployments/{deployment_id}/create_flow_run"
            body = create.model_dump(mode="json", exclude_unset=True)
            response = await prefect_adapter.asend(client, "POST", path, body)
            response.raise_for_status()
        return str(FlowRun.model_validate(response.json()).id)

    async def start_sweep(self, deployment: str, targets: list[SweepTarget], *, key: str) -> str:
        clients = [t.model_dump(mode="json") for t in targets]
        return await self.create_flow_run(
            deployment, {"clients": clients}, idempotency_key=key, tags=["sweep", f"sweep:{key}"]
        )

    async def live_sweeps(self, deployment: str) -> list[tuple[str, int | None]]:
        """Sweeps of ``deployment`` not yet ended (scheduled, pending, running): each flow
        run's id and how many clients it was given (None: the whole fleet, a scheduled one)."""
        async with get_client() as client:
            deployment_id = await self._deployment_id(client, deployment)
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(
                            any_=[StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
                        )
                    ),
                ),
                limit=50,
            )
        live: list[tuple[str, int | None]] = []
        for run in runs:
            if run.state is not None and run.state.type == StateType.SCHEDULED and run.parameters == {}:
                continue  # the schedule's next sweeps, created ahead of their time
            clients = (run.parameters or {}).get("clients")
            live.append((str(run.id), None if clients is None else len(clients)))
        return live

    async def read_finished_sweeps(self, deployment: str, limit: int = 20) -> list[tuple[str, SweepResult]]:
        """The newest completed sweeps (scheduled or on demand) and their checks."""
        async with get_client() as client:
            deployment_id = await self._deployment_id(client, deployment)
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])),
                ),
                sort=FlowRunSort.END_TIME_DESC,
                limit=limit,
            )
            if not runs:
                return []
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in runs]),
                    key=ArtifactFilterKey(any_=[SWEEP_KEY]),
                )
            )
        return [
            (str(a.flow_run_id), read_sweep(a.data))
            for a in artifacts
            if a.flow_run_id is not None and isinstance(a.data, str)
        ]

    async def read_flow_runs(self, ids: list[str]) -> dict[str, FlowRunView]:
        """The flow runs of ``ids`` that exist. Read a page at a time until a page comes back
        empty: Prefect answers at most PREFECT_SERVER_API_DEFAULT_LIMIT (200) runs a call, and
        a run left out of a truncated answer would be taken for deleted (and its run failed)
        whenever more than that many are in flight, as in a burst."""
        if not ids:
            return {}
        runs: list[FlowRun] = []
        wanted = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in ids]))
        async with get_client() as client:
            while len(runs) < len(ids):
                page = await client.read_flow_runs(
                    flow_run_filter=wanted, sort=FlowRunSort.ID_DESC, offset=len(runs)
                )
                if not page:
                    break
                runs.extend(page)
        return {
            str(r.id): FlowRunView(
                id=str(r.id),
                state_type=r.state.type.value if r.state else "PENDING",
                state_name=(r.state.name if r.state else None) or "Pending",
                message=one_line(r.state.message if r.state else ""),
                waiting_since=_since(r.state.timestamp if r.state else None, r.expected_start_time),
            )
            for r in runs
        }

    async def cancel_flow_run(self, flow_run_id: str, reason: str) -> None:
        """A run with a process is asked to stop (Cancelling: the worker signals it, the
        engine interrupts Terraform and the run ends Cancelled); one without a process
        (scheduled, suspended for approval) is Cancelled at once."""
        async with get_client() as client:
            flow_run = await client.read_flow_run(UUID(flow_run_id))
            state = flow_run.state
            if state is not None and state.is_final():
                return
            if state is not None and state.type == StateType.CANCELLING:
                # Asked while a worker held it Pending and then never started: nothing will
                # act on Cancelling. A run that never started has nothing to interrupt.
                stuck = flow_run.start_time is None and state.timestamp is not None
                if not stuck or (datetime.now(UTC) - state.timestamp).total_seconds() < CANCELLING_BOUND:
                    return
            # Pending: a process that starts now finds the run Cancelled and aborts at once.
            without_process = state is None or state.type in (
                StateType.SCHEDULED,
                StateType.PENDING,
                StateType.PAUSED,
                StateType.CANCELLING,
            )
            new_state: State[Any] = (
                Cancelled(message=reason) if without_process else Cancelling(message=reason)
            )
            await client.set_flow_run_state(UUID(flow_run_id), new_state, force=True)

    async def polling_workers(self, pool: str, within: float = WORKER_SEEN_SECONDS) -> int:
        """Workers of ``pool`` that polled within ``within`` seconds (their heartbeats)."""
        async with get_client() as client:
            try:
                workers = await client.read_workers_for_work_pool(pool)
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code != 404:
                    raise
                return 0  # no such pool: nobody polls it
        now = datetime.now(UTC)
        return sum(
            1
            for w in workers
            if w.last_heartbeat_time is not None and (now - w.last_heartbeat_time).total_seconds() < within
        )

    async def reschedule(self, flow_run_id: str, reason: str) -> bool:
        """Hand a run a dead worker took back to the pool; False when it has moved on
        since it was read (a process started it after all)."""
        async with get_client() as client:
            flow_run = await client.read_flow_run(UUID(flow_run_id))
            if flow_run.state is None or flow_run.state.type != StateType.PENDING:
                return False
            await client.set_flow_run_state(UUID(flow_run_id), Scheduled(message=reason), force=True)
        return True

    async def resume(self, flow_run_id: str, run_input: dict[str, Any], settle: float = 15.0) -> None:
        """Resume a suspended run once it has been suspended for ``settle`` seconds: a
        process worker that is handed the resumed run before it has let go of the
        suspended process's slot stops with "borrower is already holding one of this
        CapacityLimiter's tokens" (Prefect 3.8.8, seen under load)."""
        async with get_client() as client:
            flow_run = await client.read_flow_run(UUID(flow_run_id))
            if flow_run.state is not None and flow_run.state.timestamp is not None:
                waited = (datetime.now(UTC) - flow_run.state.timestamp).total_seconds()
                await asyncio.sleep(max(0.0, settle - waited))
            result = await client.resume_flow_run(UUID(flow_run_id), run_input=run_input)
        if result.status.value != "ACCEPT":
            raise RuntimeError(f"Prefect did not resume flow run {flow_run_id}: {result.details}")

    async def free_client_slot(self, limit_name: str) -> None:
        """A client's slot held by a dead run: nothing else can hold it (one run per client),
        so its count goes back to zero. A missing limit is fine: nothing holds it."""
        async with get_client() as client:
            try:
                limit = await client.read_global_concurrency_limit_by_name(limit_name)
            except ObjectNotFound:
                return
            if limit.active_slots:
                await client.update_global_concurrency_limit(
                    limit_name, GlobalConcurrencyLimitUpdate(active_slots=0)
                )

    async def delete_limit(self, limit_name: str) -> None:
        self._known_limits.pop(limit_name, None)
        async with get_client() as client:
            with contextlib.suppress(ObjectNotFound):
                await client.delete_global_concurrency_limit_by_name(limit_name)

    async def read_result(self, flow_run_id: str, operation: Operation, client_id: str) -> RunResult | None:
        """The run's result artifact, found by its key (other artifacts of the run are ignored)."""
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
                    key=ArtifactFilterKey(any_=[result_key(operation, client_id)]),
                )
            )
        for artifact in artifacts:
            if isinstance(artifact.data, str):
                return read_published(artifact.data)
        return None

    async def read_tasks(self, flow_run_id: str) -> list[dict[str, Any]]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])),
                task_run_filter=TaskRunFilter(),
            )
        ordered = sorted(runs, key=lambda r: (r.start_time is None, r.start_time or r.created))
        return [
            {
                "id": str(r.id),
                "name": r.name,
                "state": r.state.name if r.state else None,
                "start_time": r.start_time,
                "end_time": r.end_time,
                "message": one_line(r.state.message if r.state else ""),
            }
            for r in ordered
        ]

    async def read_logs(self, flow_run_id: str, limit: int = 2000) -> list[str]:
        """The server pages logs 200 at a time."""
        lines: list[str] = []
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)]))
        async with get_client() as client:
            while len(lines) < limit:
                page = await client.read_logs(
                    log_filter=log_filter, limit=200, offset=len(lines), sort=LogSort.TIMESTAMP_ASC
                )
                lines.extend(f"{log.timestamp.isoformat()} {log.message}" for log in page)
                if len(page) < 200:
                    break
        return lines[:limit]

    async def read_log_lines(self, flow_run_id: str, since: datetime | None = None) -> list[LogLine]:
        """Log lines at or after ``since``, oldest first, with the ids that tell repeats apart."""
        lines: list[LogLine] = []
        log_filter = LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)]),
            timestamp=LogFilterTimestamp(after_=since) if since is not None else None,
        )
        async with get_client() as client:
            while True:
                page = await client.read_logs(
                    log_filter=log_filter, limit=200, offset=len(lines), sort=LogSort.TIMESTAMP_ASC
                )
                lines.extend(
                    LogLine(
                        id=str(log.id),
                        timestamp=log.timestamp,
                        level=logging.getLevelName(log.level),
                        message=log.message,
                    )
                    for log in page
                )
                if len(page) < 200:
                    return lines

    async def read_progress(self, flow_run_id: str, client_id: str) -> ApplyProgress | None:
        """Resources done of planned of the run's latest Terraform apply, from its progress
        artifact; None before the run applies anything."""
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
                    key=ArtifactFilterKey(any_=[progress_key(client_id)]),
                ),
                sort=ArtifactSort.CREATED_DESC,
                limit=1,
            )
        return read_progress(artifacts[0].description) if artifacts else None
