"""Hands accepted requests to Prefect and reads finished runs back into the registry.

Accepting a request never waits on Prefect: the route writes the registry and wakes this
loop. Creation uses the run id as Prefect's idempotency key, so a retry after a timeout,
a restart of the gateway, or two gateways racing can never start Terraform twice. While
Prefect is slow or down the loop keeps the request and tries again.

No accepted run is passed over without a word: one that must wait carries what it waits
for as its message (another run of its client, its parent, its sub-clients, Prefect), one
that never can run ends failed with why (``RunService.admit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from prefect.exceptions import PrefectHTTPStatusError

from api.callbacks import CallbackSender
from api.prefect_gateway import FlowRunView, PrefectGateway
from api.registry.models import Run, RunStatus
from api.rollouts.service import RolloutService
from api.runs.gate import Verdict
from api.runs.service import RunService
from api.runs.store import parameters
from api.sweeps.service import SweepService
from flows.contract import Operation, PolicyResult
from flows.locks import client_limit_name
from flows.logs import bound
from flows.settings import get_settings
from flows.workflows import work_pool_name, workflow

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        runs: RunService,
        prefect: PrefectGateway,
        *,
        dispatch_interval: float,
        sync_interval: float,
        late_after: float = 600.0,
        pending_after: float = 300.0,
        callbacks: CallbackSender | None = None,
        sweeps: SweepService,
        rollouts: RolloutService | None = None,
    ) -> None:
        self.runs = runs
        self.sweeps = sweeps
        self.rollouts = rollouts
        self.prefect = prefect
        self.dispatch_interval = dispatch_interval
        self.sync_interval = sync_interval
        self.late_after = late_after
        self.pending_after = pending_after
        self.on_dispatched: Callable[[float], None] = lambda _seconds: None
        self.on_policies: Callable[[list[PolicyResult]], None] = lambda _results: None
        self.callbacks = callbacks or CallbackSender(runs.registry, None)
        self.sweep_sync_interval = max(5.0, sync_interval)
        self._next_sweep_sync = 0.0
        self._workers_checked_at = -1e9
        self._workers_polling_now = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Called from request threads: a new request is dispatched at once."""
        loop = self._event_loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closing as we stop
                loop.call_soon_threadsafe(self._wake.set)

    def start(self) -> None:
        """The dispatcher runs on its own thread and event loop: its registry reads and
        writes are blocking calls, and on the serving loop they would stall every request
        while a pass runs (the accept path's p99 under load)."""
        ready = threading.Event()

        def run() -> None:
            async def main() -> None:
                self._event_loop = asyncio.get_running_loop()
                self._wake = asyncio.Event()
                self._task = asyncio.current_task()
                ready.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop()

            asyncio.run(main())

        self._thread = threading.Thread(target=run, name="tenantform-dispatcher", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)

    async def stop(self) -> None:
        loop, task, thread = self._event_loop, self._task, self._thread
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        if thread is not None:
            await asyncio.to_thread(thread.join, 30)

    async def _loop(self) -> None:
        while True:
            try:
                await self.dispatch_pending()
                await self.dispatch_sweeps()
                await self.dispatch_rollouts()
                await self.sync_in_progress()
                await self.sync_rollouts()
                await self.callbacks.deliver_due()
                if time.monotonic() >= self._next_sweep_sync:
                    self._next_sweep_sync = time.monotonic() + self.sweep_sync_interval
                    await self.sync_sweeps()
            except asyncio.CancelledError:
                raise
            except (httpx.HTTPError, OSError, PrefectHTTPStatusError) as exc:
                log.warning("Prefect did not answer (%s: %s); retrying", type(exc).__name__, exc)
            except Exception:
                log.exception("dispatcher pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=min(self.dispatch_interval, self.sync_interval)
                )
            self._wake.clear()

    async def dispatch_pending(self) -> int:
        """Hand every admitted run to Prefect, oldest first. Once Prefect refuses one, the
        rest are not tried this pass; each admitted one says it waits for Prefect, and why."""
        dispatched, prefect_down = 0, ""
        for run in self.runs.accepted():
            with bound(run_id=run.id, client_id=run.client_id):
                gate = self.runs.admit(run.id)
                if gate is None or gate.verdict is Verdict.wait:
                    continue
                if gate.verdict is Verdict.refuse:
                    log.info("run %s failed before dispatch: %s", run.id, gate.reason)
                    continue
                if prefect_down:
                    self.runs.hold(run.id, f"waiting for Prefect: {prefect_down}")
                    continue
                try:
                    flow_run_id = await self._create(run)
                except Exception as exc:
                    prefect_down = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    log.warning("Prefect did not take request %s yet: %s", run.id, prefect_down)
                    self.runs.dispatch_failed(run.id, prefect_down)
                    continue
                if not self.runs.dispatched(run.id, flow_run_id):
                    await self._withdraw(run, flow_run_id)
                    continue
                log.info("run %s (%s) dispatched as flow run %s", run.id, run.operation, flow_run_id)
            created = run.created_at if run.created_at.tzinfo else run.created_at.replace(tzinfo=UTC)
            self.on_dispatched((datetime.now(UTC) - created).total_seconds())
            dispatched += 1
        return dispatched

    async def _withdraw(self, run: Run, flow_run_id: str) -> None:
        """The run ended (cancelled) while Prefect was creating its flow run: that flow run
        must not act on the client."""
        ended = self.runs.get_run(run.id)
        reason = f"run {run.id} ended before Prefect took it: {ended.message}"
        log.warning("%s; cancelling its flow run %s", reason, flow_run_id)
        try:
            await self.prefect.cancel_flow_run(flow_run_id, reason)
        except Exception as exc:
            log.error("flow run %s of ended run %s could not be cancelled: %s", flow_run_id, run.id, exc)

    async def dispatch_sweeps(self) -> int:
        """Accepted sweeps to Prefect, each once (the sweep id is the idempotency key)."""
        dispatched = 0
        deployment = workflow(Operation.reconcile).deployment_name
        shard_size = get_settings().sweep_shard_size
        live: list[tuple[str, int | None]] | None = None
        for sweep in self.sweeps.pending():
            targets = self.sweeps.targets(sweep)
            if not targets:
                self.sweeps.failed(sweep.id, "no client left to check by the time Prefect could take it")
                continue
            if len(targets) > shard_size:
                # A sweep in shards holds a worker's slot while its shards run: several at
                # once could hold every slot and wait for shards no worker is free to take.
                live = await self.prefect.live_sweeps(deployment) if live is None else live
                if busy := next((fid for fid, n in live if n is None or n > shard_size), None):
                    self.sweeps.waiting(
                        sweep.id,
                        f"waiting for sweep flow run {busy} to end: a sweep in shards runs alone "
                        "(its shards need the workers)",
                    )
                    continue
            try:
                flow_run_id = await self.prefect.start_sweep(deployment, targets, key=sweep.id)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if self.sweeps.overdue(sweep, self.late_after):
                    self.sweeps.failed(
                        sweep.id,
                        f"Prefect did not take the sweep within {self.late_after:.0f}s ({reason}); ask again",
                    )
                    continue
                log.warning("Prefect did not take sweep %s yet: %s", sweep.id, reason)
                break
            log.info("sweep %s of %d clients dispatched as flow run %s", sweep.id, len(targets), flow_run_id)
            if live is not None:
                live.append((flow_run_id, len(targets)))
            self.sweeps.dispatched(sweep.id, flow_run_id)
            dispatched += 1
        return dispatched

    async def dispatch_rollouts(self) -> int:
        """Each leg of a rollout (its start, each resume) to Prefect once: the rollout id and
        leg are the idempotency key."""
        if self.rollouts is None:
            return 0
        dispatched = 0
        deployment = workflow(Operation.rollout).deployment_name
        for rollout in self.rollouts.owed():
            try:
                flow_run_id = await self.prefect.create_flow_run(
                    deployment,
                    {"rollout_id": rollout.id},
                    idempotency_key=f"rollout-{rollout.id}-{rollout.attempt}",
                    tags=[f"rollout:{rollout.id}", f"target:{rollout.target}"],
                )
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if self.rollouts.overdue(rollout, self.late_after):
                    self.rollouts.dispatch_failed(rollout.id, f"{reason} for {self.late_after:.0f}s")
                    continue
                log.warning("Prefect did not take rollout %s yet: %s", rollout.id, reason)
                break
            log.info(
                "rollout %s (leg %d) dispatched as flow run %s", rollout.id, rollout.attempt, flow_run_id
            )
            self.rollouts.dispatched(rollout.id, flow_run_id)
            dispatched += 1
        return dispatched

    async def sync_rollouts(self) -> int:
        """A rollout whose flow run ended while it ran (crashed, cancelled, deleted) halts,
        resumable, with each client's step and reason: never a client in limbo."""
        if self.rollouts is None:
            return 0
        live = {r.flow_run_id: r for r in self.rollouts.running() if r.flow_run_id}
        if not live:
            return 0
        views = await self.prefect.read_flow_runs(list(live))
        halted = 0
        for flow_run_id, rollout in live.items():
            view = views.get(flow_run_id)
            if view is None:
                how = "no longer exists in Prefect"
            elif view.completed or view.failed or view.cancelled:
                how = f"ended {view.state_name}" + (f" ({view.message})" if view.message else "")
            else:
                continue
            log.warning("rollout %s: its flow run %s %s", rollout.id, flow_run_id, how)
            self.rollouts.flow_run_ended(rollout.id, flow_run_id, how)
            halted += 1
        return halted

    async def _create(self, run: Run) -> str:
        params = parameters(run)
        await self.prefect.ensure_client_limit(params.client_id)
        return await self.prefect.create_flow_run(
            workflow(Operation(run.operation)).deployment_name,
            params.as_prefect_parameters(),
            idempotency_key=run.id,
            tags=[f"client:{params.client_id}", f"target:{params.target}", f"run:{run.id}"],
        )

    async def sync_in_progress(self) -> int:
        """Bring every open run in line with its flow run: ended, suspended for approval,
        deleted, or left unstarted past the bound. A cancel asked through the API is carried
        to Prefect here, so it survives Prefect being down when it was asked."""
        runs = {r.flow_run_id: r for r in self.runs.open_runs() if r.flow_run_id}
        if not runs:
            return 0
        views = await self.prefect.read_flow_runs(list(runs))
        now = datetime.now(UTC)
        finished = 0
        for flow_run_id, run in runs.items():
            view = views.get(flow_run_id)
            with bound(run_id=run.id, client_id=run.client_id):
                ended = await self._sync_one(run, view, now)
                if ended is not None:
                    finished += 1
                    log.info("run %s ended %s", run.id, ended.value)
                    await self._after_end(run, ended)
        return finished

    async def sync_sweeps(self) -> int:
        """Record the checks of sweeps Prefect finished (its schedule's or ours), once each."""
        recorded = 0
        deployment = workflow(Operation.reconcile).deployment_name
        for flow_run_id, sweep in await self.prefect.read_finished_sweeps(deployment):
            if not self.sweeps.recorded(flow_run_id):
                recorded += self.sweeps.record(flow_run_id, sweep)
        return recorded

    async def _sync_one(self, run: Run, view: FlowRunView | None, now: datetime) -> RunStatus | None:
        """The run's end when it ended now, else None."""
        operation = Operation(run.operation)
        if view is None:
            reason = f"flow run {run.flow_run_id} no longer exists in Prefect (deleted)"
            return self.runs.end(run.id, RunStatus.failed, reason)
        if view.completed:
            result = await self.prefect.read_result(view.id, operation, run.client_id)
            if result is not None and result.policies:
                self.on_policies(result.policies)
            payload = result.model_dump(mode="json") if result else None
            message = (result.message if result else "") or _success(operation)
            return self.runs.end(run.id, RunStatus.completed, message, payload)
        if view.cancelled or (run.cancel_reason and view.failed):
            reason = f"cancelled: {run.cancel_reason}" if run.cancel_reason else _cancelled_in_prefect(view)
            return self.runs.end(run.id, RunStatus.cancelled, reason)
        if view.failed:
            message = view.message or f"flow run {view.state_name.lower()}"
            # A run denied by a policy published its result (the verdicts) before failing.
            result = await self.prefect.read_result(view.id, operation, run.client_id)
            if result is not None and result.policies:
                self.on_policies(result.policies)
            payload = result.model_dump(mode="json") if result else None
            return self.runs.end(run.id, RunStatus.failed, message, payload)
        if run.cancel_reason:
            await self.prefect.cancel_flow_run(view.id, run.cancel_reason)
            return None
        if view.paused and run.status == RunStatus.in_progress:  # else already recorded
            self.runs.awaiting_approval(run.id, "plan ready; waiting for approve or reject")
        if view.pending_for(now) > self.pending_after:
            reason = f"a worker took the flow run but started nothing for {self.pending_after:.0f}s"
            if await self.prefect.reschedule(view.id, f"{reason}; handed back to the work pool"):
                log.warning("run %s: %s; handed back to the work pool", run.id, reason)
            return None
        late = view.late_by(now)
        if late > self.late_after and not await self._workers_polling():
            reason = (
                f"no worker started the flow run within {self.late_after:.0f}s and none polls "
                f"the work pool {work_pool_name()!r}: start one (tenantform worker), then retry"
            )
            await self.prefect.cancel_flow_run(view.id, reason)
            return self.runs.end(run.id, RunStatus.failed, reason)
        return None

    async def _workers_polling(self) -> bool:
        """A late run behind a burst waits its turn while workers poll (they are busy with
        the runs ahead of it); it is failed as late only when no worker polls the pool.
        Asked of Prefect at most every 10 s."""
        if time.monotonic() >= self._workers_checked_at + 10:
            self._workers_polling_now = await self.prefect.polling_workers(work_pool_name()) > 0
            self._workers_checked_at = time.monotonic()
        return self._workers_polling_now

    async def _after_end(self, run: Run, ended: RunStatus) -> None:
        """A run that ended without completing may have died holding its client's slot;
        a destroyed client's limit is removed so Prefect keeps none per departed client."""
        limit = client_limit_name(run.client_id)
        try:
            if ended is RunStatus.completed and run.operation == Operation.destroy:
                await self.prefect.delete_limit(limit)
            elif ended is not RunStatus.completed and not self.runs.has_live_run(run.client_id):
                await self.prefect.free_client_slot(limit)
        except Exception as exc:
            log.warning("could not tidy concurrency limit %s: %s", limit, exc)


def _cancelled_in_prefect(view: FlowRunView) -> str:
    return f"cancelled in Prefect: {view.message}" if view.message else "cancelled in Prefect"


_SUCCESS = {
    Operation.provision: "Instance provisioning completed successfully",
    Operation.destroy: "Destroy completed successfully",
}


def _success(operation: Operation) -> str:
    return _SUCCESS.get(operation, f"{operation.value} completed successfully")
