"""Hands accepted requests to Prefect and reads finished runs back into the registry.

Accepting a request never waits on Prefect: the route writes the registry and wakes this
loop. Creation uses the run id as Prefect's idempotency key, so a retry after a timeout,
a restart of the gateway, or two gateways racing can never start Terraform twice. While
Prefect is slow or down the loop keeps the request and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.prefect_gateway import PrefectGateway
from api.service import ClientService
from flows.registry.models import Run, RunStatus
from flows.workflows import workflow

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        service: ClientService,
        prefect: PrefectGateway,
        *,
        dispatch_interval: float,
        sync_interval: float,
    ) -> None:
        self.service = service
        self.prefect = prefect
        self.dispatch_interval = dispatch_interval
        self.sync_interval = sync_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="tenantform-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.dispatch_pending()
                await self.sync_in_progress()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=min(self.dispatch_interval, self.sync_interval)
                )
            self._wake.clear()

    async def dispatch_pending(self) -> int:
        dispatched = 0
        for run in self.service.runs_in(RunStatus.accepted):
            wait, reason = self.service.blocker(run)
            if reason and not wait:
                self.service.finish(run.id, ok=False, message=reason, result=None)
                continue
            if wait:
                continue
            try:
                flow_run_id = await self._create(run)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log.warning("Prefect did not take request %s yet: %s", run.id, reason)
                self.service.note_dispatch_failure(run.id, reason)
                break
            self.service.mark_dispatched(run.id, flow_run_id)
            dispatched += 1
        return dispatched

    async def _create(self, run: Run) -> str:
        client_id = run.parameters["client_id"]
        return await self.prefect.create_flow_run(
            workflow(run.operation).deployment_name,
            run.parameters,
            idempotency_key=run.id,
            tags=[f"client:{client_id}", f"target:{run.parameters['target']}", f"request:{run.id}"],
        )

    async def sync_in_progress(self) -> int:
        runs = {r.flow_run_id: r for r in self.service.runs_in(RunStatus.in_progress) if r.flow_run_id}
        if not runs:
            return 0
        views = await self.prefect.read_flow_runs(list(runs))
        finished = 0
        for flow_run_id, view in views.items():
            run = runs[flow_run_id]
            if view.completed:
                result = await self.prefect.read_result(flow_run_id)
                self.service.finish(run.id, ok=True, message=_success(run.operation), result=result)
            elif view.failed:
                message = view.message or f"flow run {view.state_name.lower()}"
                self.service.finish(run.id, ok=False, message=message, result=None)
            else:
                continue
            finished += 1
        return finished


def _success(operation: str) -> str:
    return {
        "provision": "Instance provisioning completed successfully",
        "destroy": "Destroy completed successfully",
    }.get(operation, f"{operation} completed successfully")
