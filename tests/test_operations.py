"""An operation the provision flows do not carry out is an error, never a plan."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from flows import provision
from flows.contract import FlowParameters, Operation, RunResult
from flows.settings import Settings
from flows.tasks import PolicyCheck

OTHERS = [op for op in Operation if op not in provision.ACTIONS]


def test_the_flows_act_on_provision_destroy_and_plan_only() -> None:
    assert {Operation.provision, Operation.destroy, Operation.plan} == provision.ACTIONS
    assert OTHERS, "create-tables and reconcile have flows of their own"


@pytest.mark.parametrize("operation", OTHERS, ids=str)
def test_act_refuses_an_operation_it_does_not_know(
    operation: Operation, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    for name in ("terraform_apply", "terraform_destroy", "terraform_plan"):
        monkeypatch.setattr(provision, name, SimpleNamespace(with_options=lambda name=name, **_: ran.append))
    job: Any = SimpleNamespace(settings=Settings())
    result = RunResult(run_id="r", operation=operation, client_id="c", target="local", terraform="t")
    with pytest.raises(provision.UnsupportedOperation, match=f"'{operation.value}' is not one of"):
        provision._act(job, result, PolicyCheck(operation=operation.value))
    assert ran == [], "nothing was run, least of all a plan"


@pytest.mark.parametrize("operation", OTHERS, ids=str)
def test_run_refuses_before_building_a_job(operation: Operation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provision.Job, "create", lambda *a, **k: pytest.fail("a job was built"))
    params = FlowParameters(run_id="r", client_id="c", target="local", inputs={})
    with pytest.raises(provision.UnsupportedOperation, match="destroy, plan, provision"):
        provision._run(operation, params)
