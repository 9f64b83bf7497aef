"""``GET /api/runs/{run_id}/events``: one run followed as server-sent events.

Prefect has no push API a gateway can subscribe to per flow run without its events
websocket (not in every deployment of it), so the follower polls what ``GET /api/runs``
reads (the registry's run, the flow run's task runs, logs and progress artifact) and
sends each change once, in order, until the run ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from itertools import count

from fastapi.sse import ServerSentEvent
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.prefect_gateway import PrefectGateway
from api.registry.models import Run, RunStatus
from api.runs.service import RunService
from api.schemas import ProgressView, TaskView, Timestamp
from flows.terraform.events import ApplyProgress

LOG_LAG = timedelta(seconds=30)
"""Flow-run processes send their logs in batches: a line can reach Prefect this much
after lines stamped later. Lines are re-read over this window and told apart by id."""


class StatusEvent(BaseModel):
    status: str
    message: str


class LogEvent(BaseModel):
    timestamp: Timestamp
    level: str
    message: str


class EndEvent(BaseModel):
    request_id: str
    status: str
    message: str
    finished_at: Timestamp | None


class ErrorEvent(BaseModel):
    detail: str


EVENTS = """Event names, each with a JSON `data` line:
`status` (the run's status and message), `task` (a task run's new state: name, state,
start_time, end_time, message), `log` (a new log line: timestamp, level, message),
`progress` (resources done of planned while Terraform applies: command, planned, done,
percent), then `end` (request_id, status, message, finished_at) when the run has ended, or
`error` (detail) when Prefect or the registry stop answering or the API key that opened the
stream is revoked; the stream closes after either."""


class RunFollower:
    def __init__(
        self,
        runs: RunService,
        prefect: PrefectGateway,
        run_id: str,
        *,
        poll: float = 1.0,
        patience: float = 30.0,
        admitted: Callable[[], bool] = lambda: True,
    ) -> None:
        self.runs, self.prefect, self.run_id = runs, prefect, run_id
        self.poll, self.patience = poll, patience
        self.admitted = admitted
        """Whether the key that opened the stream still opens it, asked before each poll:
        a key revoked while its stream is open ends the stream."""
        self._status: StatusEvent | None = None
        self._tasks: dict[str, TaskView] = {}
        self._logs_seen: set[str] = set()
        self._logs_since: datetime | None = None
        self._progress: ApplyProgress | None = None

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        ids = count(1)
        answered = time.monotonic()
        while True:
            if not await run_in_threadpool(self.admitted):
                revoked = ErrorEvent(detail="the API key that opened this stream has been revoked")
                yield ServerSentEvent(event="error", id=str(next(ids)), data=revoked)
                return
            try:
                run = await run_in_threadpool(self.runs.get_run, self.run_id)
                changes = await self._changes(run)
            except Exception as exc:
                if time.monotonic() - answered > self.patience:
                    reason = f"{type(exc).__name__}: {exc}"
                    error = ErrorEvent(detail=f"the run could not be read for {self.patience:g}s: {reason}")
                    yield ServerSentEvent(event="error", id=str(next(ids)), data=error)
                    return
                await asyncio.sleep(self.poll)
                continue
            answered = time.monotonic()
            for name, data in changes:
                yield ServerSentEvent(event=name, id=str(next(ids)), data=data)
            if RunStatus(run.status).terminal:
                end = EndEvent(
                    request_id=run.id, status=run.status, message=run.message, finished_at=run.finished_at
                )
                yield ServerSentEvent(event="end", id=str(next(ids)), data=end)
                return
            await asyncio.sleep(self.poll)

    async def _changes(self, run: Run) -> list[tuple[str, BaseModel]]:
        """What is new since the last poll; the state is kept only once all reads answered."""
        changes: list[tuple[str, BaseModel]] = []
        status = StatusEvent(status=run.status, message=run.message)
        if status != self._status:
            changes.append(("status", status))
        tasks, logs, progress = dict(self._tasks), [], self._progress
        if run.flow_run_id:
            for raw in await self.prefect.read_tasks(run.flow_run_id):
                task = TaskView.model_validate(raw)
                if tasks.get(raw["id"]) != task:
                    tasks[raw["id"]] = task
                    changes.append(("task", task))
            logs = [
                line
                for line in await self.prefect.read_log_lines(run.flow_run_id, self._logs_since)
                if line.id not in self._logs_seen
            ]
            changes += [
                ("log", LogEvent(timestamp=line.timestamp, level=line.level, message=line.message))
                for line in logs
            ]
            progress = await self.prefect.read_progress(run.flow_run_id, run.client_id)
            if progress is not None and progress != self._progress:
                changes.append(("progress", ProgressView.of(progress)))
        self._status, self._tasks, self._progress = status, tasks, progress
        self._logs_seen.update(line.id for line in logs)
        if logs:
            newest = max(line.timestamp for line in logs) - LOG_LAG
            self._logs_since = max(newest, self._logs_since) if self._logs_since else newest
        return changes
