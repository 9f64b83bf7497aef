"""Applies the workflow catalogue (``prefect.yaml``) to a Prefect server from Python.

Flows are deployed by module path: a worker imports them from the installed project,
so no code is copied or pulled and the same entry works on any machine with the package.
"""

from __future__ import annotations

import importlib
import logging

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists
from prefect.flows import Flow
from prefect.types.entrypoint import EntrypointType

from flows.workflows import Workflow, workflows

log = logging.getLogger(__name__)


def load_flow(entry: Workflow) -> Flow[..., object]:
    path, attr = entry.entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    found = getattr(module, attr)
    assert isinstance(found, Flow), f"{entry.entrypoint} is not a flow"
    return found


async def ensure_work_pool(name: str) -> None:
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            log.info("created work pool %s", name)
        except ObjectAlreadyExists:
            pass


async def apply_deployments() -> dict[str, str]:
    """Create or update every deployment; returns ``flow/deployment`` -> id."""
    applied: dict[str, str] = {}
    for entry in workflows().values():
        await ensure_work_pool(entry.work_pool)
        flow = load_flow(entry)
        deployment: RunnerDeployment = await flow.ato_deployment(
            name=entry.name,
            description=entry.description,
            tags=list(entry.tags),
            work_pool_name=entry.work_pool,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        deployment_id = await deployment.apply()  # type: ignore[misc]  # sync_compatible
        applied[entry.deployment_name] = str(deployment_id)
    return applied
