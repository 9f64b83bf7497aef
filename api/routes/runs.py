"""Runs: one run (with its tasks, progress and logs), followed as events, approved,
rejected or cancelled. A client's runs are listed under its own path (``clients.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.auth import ApiKey, PolicyOverrideKey, still_admitted
from api.deps import Clients, Prefect, Runs
from api.prefect_gateway import PrefectGateway, one_line
from api.registry.models import Run
from api.responses import BAD_BODY, CONFLICT, GUARDED, NOT_FOUND, UNAVAILABLE, as_json
from api.run_events import EVENTS, RunFollower
from api.schemas import Accepted, OverrideRequest, ProgressView, RunSummary, RunView, TaskView
from api.settings import get_gateway_settings

router = APIRouter(
    prefix="/api",
    tags=["runs"],
    dependencies=[ApiKey],
    responses={**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT},
)


@router.post("/runs/{run_id}/approve", response_model=RunSummary, responses=UNAVAILABLE)
async def approve_run(run_id: UUID, runs: Runs, prefect: Prefect) -> RunSummary:
    """Apply exactly the plan the run saved; a plan made stale by another apply is refused."""
    flow_run_id = runs.awaiting_flow_run(str(run_id))
    try:
        await prefect.resume(flow_run_id, {"approve": True})
    except Exception as exc:
        raise HTTPException(503, f"Prefect did not take the approval: {exc}") from None
    return RunSummary.of(runs.approve(str(run_id)))


@router.post("/runs/{run_id}/reject", response_model=RunSummary)
def reject_run(run_id: UUID, runs: Runs) -> RunSummary:
    """End a run awaiting approval without applying its plan."""
    return RunSummary.of(runs.reject(str(run_id)))


@router.post(
    "/runs/{run_id}/override",
    status_code=202,
    response_model=Accepted,
    dependencies=[PolicyOverrideKey],
)
def override_run(run_id: UUID, body: OverrideRequest, clients: Clients) -> Accepted:
    """Run again a run that soft-mandatory policies denied, overriding those policies for
    that one new run; who and why are recorded in its parameters and its policy results.
    Needs a key with the `policy:override` scope (403 without); 409 when the run was not
    denied by a policy, a hard-mandatory policy denied it, or it is not its client's last run."""
    accepted = clients.override(str(run_id), body.reason)
    return Accepted.of(accepted.run, accepted.created)


@router.post("/runs/{run_id}/cancel", response_model=RunSummary)
def cancel_run(run_id: UUID, runs: Runs) -> RunSummary:
    """Works in every open state; Terraform is interrupted so that it releases its lock and
    the run ends ``cancelled``. 409 when the run has already ended."""
    return RunSummary.of(runs.cancel(str(run_id), "cancelled through the API"))


DETAILS_SECONDS = 5.0
"""How long a run's view waits on Prefect for its tasks, progress and logs. The registry
answers the rest, so an overloaded or absent Prefect slows nobody's read past this."""


@router.get("/runs/{run_id}", response_model=RunView)
async def get_run(
    run_id: UUID,
    runs: Runs,
    prefect: Prefect,
    logs: Annotated[bool, Query(description="Include the run's log lines.")] = False,
) -> RunView:
    run = runs.get_run(str(run_id))
    view = RunView.of(run)
    if run.flow_run_id:
        try:
            async with asyncio.timeout(DETAILS_SECONDS):
                await _add_details(view, run, prefect, logs)
        except Exception as exc:
            view.tasks, view.progress, view.logs = None, None, None
            reason = (
                f"did not answer within {DETAILS_SECONDS:g} s"
                if isinstance(exc, TimeoutError)
                else f"{type(exc).__name__}: {one_line(str(exc))}"
            )
            view.details_missing = f"tasks, progress and logs left out: Prefect {reason}"
    return view


async def _add_details(view: RunView, run: Run, prefect: PrefectGateway, logs: bool) -> None:
    assert run.flow_run_id is not None
    tasks, progress, lines = await asyncio.gather(
        prefect.read_tasks(run.flow_run_id),
        prefect.read_progress(run.flow_run_id, run.client_id),
        prefect.read_logs(run.flow_run_id) if logs else _nothing(),
    )
    view.tasks = [TaskView.model_validate(t) for t in tasks]
    view.progress = ProgressView.of(progress) if progress else None
    view.logs = lines if logs else None


async def _nothing() -> list[str]:
    return []


async def followed_run(run_id: UUID, runs: Runs, prefect: Prefect) -> Run:
    """Checked before the stream opens, so these answer with a status code: an unknown run
    is a 404, an unreachable Prefect a 503 (a stream would otherwise never see an end)."""
    run = runs.get_run(str(run_id))
    problem = await prefect.healthy()
    if problem is not None:
        raise HTTPException(503, f"Prefect did not answer: {problem}")
    return run


@router.get(
    "/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses=as_json({**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT, **UNAVAILABLE}),
    response_description=EVENTS,
)
async def run_events(
    run: Annotated[Run, Depends(followed_run)], runs: Runs, prefect: Prefect, request: Request
) -> AsyncIterator[ServerSentEvent]:
    """Follow a run as server-sent events (`curl -N`): its status, task states, log lines
    and Terraform progress as they change, then its end; the stream closes when the run
    has ended (at once, after its history, for a run already ended), or with an `error`
    event once the key that opened it is revoked."""
    poll = get_gateway_settings().sync_interval_seconds
    follower = RunFollower(runs, prefect, run.id, poll=poll, admitted=still_admitted(request))
    async for event in follower.events():
        yield event
