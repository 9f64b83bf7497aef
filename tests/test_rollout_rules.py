"""The rules of rollouts on a real registry (SQLite, migrated), without Prefect: which
clients each wave takes, the verdict on a wave, pause, resume, abort, rollback, and a
flow run that dies. The rollout flow's calls are made here as it makes them over HTTP
(tests/test_rollouts.py runs the whole thing with real Prefect and Terraform)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.clients.service import ClientService
from api.errors import Conflict, InvalidInput
from api.registry.db import Registry
from api.registry.models import Client, ClientStatus, Run, RunStatus
from api.rollouts.service import RolloutService
from flows.rollouts.contract import ClientStep, PlanOutcome, RolloutSpec, RolloutStatus, Tolerance, Wave
from flows.terraform.revisions import revision_store


@pytest.fixture
def service(tmp_path: Path, settings: Any) -> RolloutService:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    registry.migrate()
    clients = ClientService(registry, revisions=revision_store(settings))
    return RolloutService(clients, settings)


def _fleet(
    service: RolloutService, n: int, revision: str, labels: dict[int, dict[str, str]] | None = None
) -> list[str]:
    ids = []
    with service.registry.session() as session:
        for i in range(n):
            cid = f"00000000-0000-0000-0000-{i:012d}"
            session.add(
                Client(
                    id=cid,
                    kind="instances",
                    target="local",
                    inputs={"cloud_provider": "local", "instance_name_prefix": f"c{i}", "count": 1},
                    labels=(labels or {}).get(i, {}),
                    fingerprint="x",
                    status=ClientStatus.ready,
                    revision=revision,
                )
            )
            session.flush()
            ids.append(cid)
    return ids


def _revisions(settings: Any) -> tuple[str, str]:
    store = revision_store(settings)
    old = store.record("local").id
    new = store.record("local-hospital").id  # another tree: stands in for a new revision
    return old, new


def _end_runs(service: RolloutService, status: RunStatus, message: str = "") -> None:
    """The upgrade runs end as the dispatcher ends them (the client moves on success)."""
    with service.registry.session() as session:
        for run in session.query(Run).filter(Run.status == RunStatus.accepted):
            run.status, run.message = status, message
            session.get(Client, run.client_id).run_finished(run)


def test_waves_take_labels_then_a_share_of_what_is_left(service: RolloutService, settings: Any) -> None:
    old, _ = _revisions(settings)
    new = old[::-1]
    ids = _fleet(service, 10, old, {7: {"ring": "canary"}})
    spec = RolloutSpec(
        target="local",
        revision=old,
        waves=[Wave(labels={"ring": "canary"}), Wave(percent=25), Wave(count=2), Wave()],
    )
    with service.registry.session() as session:  # one client already there: not taken
        session.get(Client, ids[0]).revision = old
    for cid in ids[1:]:
        with service.registry.session() as session:
            session.get(Client, cid).revision = new
    rollout = service.accept(spec)
    first = service.start_wave(rollout.id, 0)
    assert [c.params.client_id for c in first.clients] == [ids[7]]
    assert first.clients[0].params.revision == old and first.clients[0].from_revision == new
    assert service.start_wave(rollout.id, 1).go is False, "only the current wave starts"
    for c in first.clients:
        service.record_plan(rollout.id, c.params.client_id, PlanOutcome(step="planned"))
        assert service.upgrade(rollout.id, c.params.client_id).step == ClientStep.applying
    _end_runs(service, RunStatus.completed)
    assert service.end_wave(rollout.id, 0).next_wave == 1
    second = service.start_wave(rollout.id, 1)
    assert [c.params.client_id for c in second.clients] == ids[1:3], (
        "25 % of 8 left, rounded up, oldest first"
    )
    again = service.start_wave(rollout.id, 1)
    assert [c.params.client_id for c in again.clients] == ids[1:3], "starting a wave again chooses nobody new"


def test_failures_past_the_tolerance_halt_and_hold_the_rest(service: RolloutService, settings: Any) -> None:
    old, new = _revisions(settings)
    ids = _fleet(service, 6, old)
    spec = RolloutSpec(
        target="local-hospital",
        revision=new,
        waves=[Wave(count=3, failure_tolerance=Tolerance(count=1)), Wave()],
    )
    with pytest.raises(InvalidInput, match="revision"):
        service.accept(spec.model_copy(update={"target": "local", "revision": "f" * 16}))
    with service.registry.session() as session:
        for cid in ids:
            session.get(Client, cid).target = "local-hospital"
    rollout = service.accept(spec)
    with pytest.raises(Conflict, match=rollout.id):
        service.accept(spec)
    wave = service.start_wave(rollout.id, 0)
    a, b, c = (t.params.client_id for t in wave.clients)
    service.record_plan(rollout.id, a, PlanOutcome(step="failed", reason="plan failed: boom"))
    service.record_plan(rollout.id, b, PlanOutcome(step="planned"))
    service.record_plan(rollout.id, c, PlanOutcome(step="skipped", reason="the plan would replace x"))
    service.upgrade(rollout.id, b)
    _end_runs(service, RunStatus.failed, "quota exceeded")
    end = service.end_wave(rollout.id, 0)
    assert (
        end.status is RolloutStatus.halted
        and "2 of 3" in end.message
        and "wave 2-2 untouched" not in end.message
    )
    view = service.get(rollout.id)
    steps = {r.client_id: (r.step, r.reason) for r in view.clients}
    assert steps[b] == (ClientStep.failed, steps[b][1]) and "quota exceeded" in steps[b][1]
    assert steps[c][0] == ClientStep.skipped and "replace" in steps[c][1]
    assert all(r.wave == 0 for r in view.clients), "the later wave is untouched"
    with service.registry.session() as session:
        assert session.get(Client, b).revision == old, "a failed upgrade leaves the client where it was"
    with pytest.raises(Conflict, match="nothing to roll back"):
        service.rollback(rollout.id)
    assert service.abort(rollout.id).status == RolloutStatus.aborted
    with pytest.raises(Conflict):
        service.resume(rollout.id)


def test_pause_holds_resume_replans_and_a_dead_flow_run_halts(service: RolloutService, settings: Any) -> None:
    old, new = _revisions(settings)
    ids = _fleet(service, 3, old)
    with service.registry.session() as session:
        for cid in ids:
            session.get(Client, cid).target = "local-hospital"
    rollout = service.accept(RolloutSpec(target="local-hospital", revision=new, waves=[Wave()]))
    service.dispatched(rollout.id, "11111111-1111-1111-1111-111111111111")
    wave = service.start_wave(rollout.id, 0)
    for t in wave.clients:
        service.record_plan(rollout.id, t.params.client_id, PlanOutcome(step="planned"))
    service.upgrade(rollout.id, ids[0])
    service.pause(rollout.id)
    assert service.upgrade(rollout.id, ids[1]).step == ClientStep.held, "no new upgrade once pausing"
    service.upgrade(rollout.id, ids[2])
    _end_runs(service, RunStatus.completed)
    end = service.end_wave(rollout.id, 0)
    assert end.status is RolloutStatus.paused and end.next_wave is None
    resumed = service.resume(rollout.id)
    assert resumed.status == RolloutStatus.accepted and resumed.attempt == 2 and resumed.dispatch
    assert {r.client_id: r.step for r in resumed.clients}[ids[1]] == ClientStep.pending
    service.dispatched(rollout.id, "22222222-2222-2222-2222-222222222222")
    again = service.start_wave(rollout.id, 0)
    assert [t.step for t in again.clients].count(ClientStep.pending) == 2
    service.flow_run_ended(rollout.id, "22222222-2222-2222-2222-222222222222", "ended Crashed (worker died)")
    halted = service.get(rollout.id)
    assert halted.status == RolloutStatus.halted and "Crashed" in halted.message
    steps = {r.client_id: r.step for r in halted.clients}
    assert steps[ids[0]] == ClientStep.applied and steps[ids[1]] == ClientStep.held
    assert steps[ids[2]] == ClientStep.held, "planned but not started: held for a resume, never in limbo"
    service.flow_run_ended(rollout.id, "22222222-2222-2222-2222-222222222222", "again")
    assert service.get(rollout.id).message == halted.message, "told once"
    back_blocked = service.rollback(rollout.id)
    assert back_blocked.rollback_of == rollout.id and back_blocked.revision is None
    rows = back_blocked.parsed.waves[0].clients
    assert rows == [ids[0]], "a rollback moves only the upgraded clients"
    first = service.start_wave(back_blocked.id, 0)
    assert [(t.params.client_id, t.params.revision) for t in first.clients] == [(ids[0], old)]


def test_bad_specs_name_the_field() -> None:
    for body, field in [
        ({"target": "local", "revision": "0" * 16, "waves": []}, "waves"),
        ({"target": "local", "revision": "ABC", "waves": [{}]}, "revision"),
        ({"target": "local", "revision": "0" * 16, "waves": [{"count": 1, "percent": 5}]}, "waves"),
        (
            {
                "target": "local",
                "revision": "0" * 16,
                "waves": [{"failure_tolerance": {"count": 1, "percent": 1}}],
            },
            "waves",
        ),
        ({"target": "local", "revision": "0" * 16, "waves": [{}], "allow": ["noop"]}, "allow"),
        ({"target": "local", "revision": "0" * 16, "waves": [{}], "surprise": 1}, "surprise"),
    ]:
        with pytest.raises(ValidationError) as caught:
            RolloutSpec.model_validate(body)
        assert caught.value.errors()[0]["loc"][0] == field, (body, caught.value.errors())
    assert Wave(percent=10).size_of(9) == 1 and Wave(percent=10).size_of(0) == 0
    assert Wave(count=5).size_of(3) == 3 and Wave().size_of(7) == 7
    assert Tolerance(percent=25).allows(1, 4) and not Tolerance(percent=25).allows(1, 3)
    assert Tolerance().allows(0, 5) and not Tolerance().allows(1, 5)


def test_a_run_applies_only_the_actions_it_is_allowed() -> None:
    """The check a rollout's upgrade run makes on whatever plan it applies (saved or new)."""
    from flows.tasks import PlanNotAllowed, plan_actions, require_allowed

    plan = {
        "resource_changes": [
            {"address": "a.kept", "change": {"actions": ["no-op"]}},
            {"address": "a.new", "change": {"actions": ["create"]}},
            {"address": "a.renamed", "change": {"actions": ["delete", "create"]}},
            {"address": "a.gone", "change": {"actions": ["delete"]}},
            {"address": "a.read", "change": {"actions": ["read"]}},
        ]
    }
    assert plan_actions(plan) == [("create", "a.new"), ("replace", "a.renamed"), ("delete", "a.gone")]
    require_allowed(plan, None)
    require_allowed(plan, ("create", "replace", "delete"))
    with pytest.raises(
        PlanNotAllowed, match=r"replace a.renamed, delete a.gone; this run may only create and update"
    ):
        require_allowed(plan, ("create", "update"))


def test_the_saved_plan_name_follows_inputs_and_revision() -> None:
    from flows.contract import RolloutHint

    hint = RolloutHint(rollout_id="r1", allowed_actions=["create"])
    name = hint.plan_name({"count": 1}, "a" * 16)
    assert name.startswith("rollout-r1-") and name == hint.plan_name({"count": 1}, "a" * 16)
    assert name != hint.plan_name({"count": 2}, "a" * 16), "a PATCH in between: the run plans afresh"
    assert name != hint.plan_name({"count": 1}, "b" * 16)
