"""Rollouts: a module revision carried across a target's clients in waves, followed,
paused, resumed, aborted and rolled back. The ``/waves`` and ``/clients`` routes below
them are the rollout flow's: it records each client here as it goes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from api.auth import ApiKey
from api.keys import caller_name
from api.responses import BAD_BODY, CONFLICT, GUARDED, NOT_FOUND
from api.rollouts.service import RolloutService, as_dict
from api.rollouts.views import RolloutList, RolloutSummary, RolloutView
from api.routes.paging import Limit, Offset
from flows.rollouts.contract import PlanOutcome, RolloutSpec, RolloutStatus, WaveEnd, WaveStart

router = APIRouter(
    prefix="/api/rollouts",
    tags=["rollouts"],
    dependencies=[ApiKey],
    responses={**BAD_BODY, **GUARDED, **NOT_FOUND, **CONFLICT},
)


def _service(request: Request) -> RolloutService:
    service: RolloutService = request.app.state.rollouts
    return service


Rollouts = Annotated[RolloutService, Depends(_service)]


@router.post("", status_code=202, response_model=RolloutView)
def start_rollout(spec: RolloutSpec, rollouts: Rollouts) -> RolloutView:
    """Move a target's clients to a revision, wave by wave; 409 while another rollout of
    the target is open. Answered at once: the dispatcher hands it to Prefect."""
    return RolloutView.of(rollouts.accept(spec, by=caller_name.get()))


@router.get("", response_model=RolloutList)
def list_rollouts(
    rollouts: Rollouts,
    target: Annotated[str | None, Query(max_length=64)] = None,
    status: RolloutStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> RolloutList:
    found, total = rollouts.find(target=target, status=status, limit=limit, offset=offset)
    return RolloutList(
        total=total, limit=limit, offset=offset, rollouts=[RolloutSummary.of(r) for r in found]
    )


@router.get("/{rollout_id}", response_model=RolloutView)
def get_rollout(rollout_id: str, rollouts: Rollouts) -> RolloutView:
    """Per wave, per client: the planned changes, the upgrade run, the step and its reason."""
    return RolloutView.of(rollouts.get(rollout_id))


@router.post("/{rollout_id}/pause", status_code=202, response_model=RolloutView)
def pause_rollout(rollout_id: str, rollouts: Rollouts) -> RolloutView:
    """Open upgrade runs finish; no new one starts; the rollout pauses with the rest held."""
    return RolloutView.of(rollouts.pause(rollout_id))


@router.post("/{rollout_id}/resume", status_code=202, response_model=RolloutView)
def resume_rollout(rollout_id: str, rollouts: Rollouts) -> RolloutView:
    """Carry a paused or halted rollout on (a new flow run, from its record)."""
    return RolloutView.of(rollouts.resume(rollout_id))


@router.post("/{rollout_id}/abort", status_code=202, response_model=RolloutView)
def abort_rollout(rollout_id: str, rollouts: Rollouts) -> RolloutView:
    """End it: clients not yet upgrading are skipped; open upgrade runs end as runs do."""
    return RolloutView.of(rollouts.abort(rollout_id, f"aborted through the API by {caller_name.get()}"))


@router.post("/{rollout_id}/rollback", status_code=202, response_model=RolloutView)
def rollback_rollout(rollout_id: str, rollouts: Rollouts) -> RolloutView:
    """A new rollout, same waves, moving each upgraded client back to its previous revision."""
    return RolloutView.of(rollouts.rollback(rollout_id, by=caller_name.get()))


# The rollout flow's calls ----------------------------------------------------------------
@router.post("/{rollout_id}/waves/{wave}/start", response_model=WaveStart, include_in_schema=False)
def start_wave(rollout_id: str, wave: int, rollouts: Rollouts) -> WaveStart:
    return rollouts.start_wave(rollout_id, wave)


@router.put("/{rollout_id}/clients/{client_id}/plan", include_in_schema=False)
def record_plan(rollout_id: str, client_id: str, outcome: PlanOutcome, rollouts: Rollouts) -> dict[str, Any]:
    return as_dict(rollouts.record_plan(rollout_id, client_id, outcome))


@router.post("/{rollout_id}/clients/{client_id}/upgrade", include_in_schema=False)
def upgrade_client(rollout_id: str, client_id: str, rollouts: Rollouts) -> dict[str, Any]:
    return as_dict(rollouts.upgrade(rollout_id, client_id))


@router.post("/{rollout_id}/waves/{wave}/end", response_model=WaveEnd, include_in_schema=False)
def end_wave(rollout_id: str, wave: int, rollouts: Rollouts) -> WaveEnd:
    return rollouts.end_wave(rollout_id, wave)
