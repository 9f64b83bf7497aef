"""A cancel that reaches a run a worker holds (Pending) but never started: Cancelling would
wait for a process that never comes, so the run is Cancelled outright; one left Cancelling
that way by an older gateway is Cancelled once the bound passes. Real Prefect server."""

from __future__ import annotations

import asyncio

import pytest


def _flow_run(state: str) -> str:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling, Pending

    @flow(name="tenantform-cancel-probe")
    def probe() -> None:
        pass

    async def make() -> str:
        async with get_client() as client:
            run = await client.create_flow_run(probe, state=Pending())
            if state == "CANCELLING":
                await client.set_flow_run_state(run.id, Cancelling(message="asked"), force=True)
            return str(run.id)

    return asyncio.run(make())


def _state(flow_run_id: str) -> str:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    assert state is not None
    return state.type.value


def test_a_pending_run_is_cancelled_outright(prefect_server: str) -> None:
    from api.prefect_gateway import PrefectGateway

    flow_run_id = _flow_run("PENDING")
    asyncio.run(PrefectGateway().cancel_flow_run(flow_run_id, "cancelled through the API"))
    assert _state(flow_run_id) == "CANCELLED"


def test_a_never_started_run_left_cancelling_is_cancelled_after_the_bound(
    prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api import prefect_gateway

    flow_run_id = _flow_run("CANCELLING")
    asyncio.run(prefect_gateway.PrefectGateway().cancel_flow_run(flow_run_id, "again"))
    assert _state(flow_run_id) == "CANCELLING", "within the bound a process may still act on it"
    monkeypatch.setattr(prefect_gateway, "CANCELLING_BOUND", 0.0)
    asyncio.run(prefect_gateway.PrefectGateway().cancel_flow_run(flow_run_id, "again"))
    assert _state(flow_run_id) == "CANCELLED"
