"""A run that waits in Scheduled past LATE_RUN_SECONDS behind a burst is not failed while
workers poll its pool (they are busy with the runs ahead of it); only a pool nobody polls
fails it, saying so. Workers are seen through their heartbeats on a real Prefect server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from api.clients.service import ClientService
from api.dispatcher import Dispatcher
from api.prefect_gateway import PrefectGateway
from api.registry.db import Registry
from api.runs.service import RunService
from api.sweeps.service import SweepService


def _heartbeat(pool: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        client.send_worker_heartbeat(work_pool_name=pool, worker_name=f"busy-{pool}")


def test_polling_workers_are_read_from_their_heartbeats(prefect_server: str) -> None:
    pool = f"late-probe-{uuid.uuid4().hex[:8]}"
    gateway = PrefectGateway()
    assert asyncio.run(gateway.polling_workers(pool)) == 0, "a pool that does not exist"
    _heartbeat(pool)
    assert asyncio.run(gateway.polling_workers(pool)) == 1
    assert asyncio.run(gateway.polling_workers(pool, within=0)) == 0, "a heartbeat too old"


def test_the_dispatcher_waits_for_busy_workers_and_fails_only_an_unpolled_pool(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.dispatcher as dispatcher_module

    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    registry.migrate()
    runs = RunService(registry)
    dispatcher = Dispatcher(
        runs,
        PrefectGateway(),
        dispatch_interval=1,
        sync_interval=1,
        sweeps=SweepService(ClientService(registry)),
    )
    pool = f"late-probe-{uuid.uuid4().hex[:8]}"
    setattr(dispatcher_module, "work_pool_name", lambda: pool)
    try:
        assert asyncio.run(dispatcher._workers_polling()) is False
        _heartbeat(pool)
        assert asyncio.run(dispatcher._workers_polling()) is False, "asked again only after 10 s"
        dispatcher._workers_checked_at = -1e9
        assert asyncio.run(dispatcher._workers_polling()) is True
    finally:
        from flows.workflows import work_pool_name

        setattr(dispatcher_module, "work_pool_name", work_pool_name)
        registry.dispose()
