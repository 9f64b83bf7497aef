"""The workflow catalogue, read from ``prefect.yaml``: the one place deployments are
declared. Every ``Operation`` has exactly one entry there (checked on load); the gateway
names deployments through it and ``deployments/`` applies it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from flows.contract import Operation

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"


@dataclass(frozen=True)
class Workflow:
    operation: Operation
    entrypoint: str
    """A module path (``flows.provision.provision``): importable from any directory."""
    description: str
    work_pool: str
    tags: tuple[str, ...]
    job_variables: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    """The deployment's schedule, if it has one."""

    @property
    def name(self) -> str:
        return self.operation.value

    @property
    def flow_name(self) -> str:
        """Our flows are named like their deployments (``@flow(name=...)``)."""
        return self.entrypoint.rsplit(".", 1)[1].replace("_", "-")

    @property
    def deployment_name(self) -> str:
        """``flow/deployment``, as Prefect names a deployment."""
        return f"{self.flow_name}/{self.name}"


class CatalogueError(ValueError):
    pass


@lru_cache
def workflows() -> dict[Operation, Workflow]:
    raw = yaml.safe_load(PREFECT_YAML.read_text())
    found: dict[Operation, Workflow] = {}
    for d in raw["deployments"]:
        try:
            operation = Operation(d["name"])
        except ValueError:
            raise CatalogueError(f"prefect.yaml deployment {d['name']!r} is not an Operation") from None
        found[operation] = Workflow(
            operation=operation,
            entrypoint=d["entrypoint"],
            description=d.get("description", ""),
            work_pool=d["work_pool"]["name"],
            tags=tuple(d.get("tags", [])),
            job_variables=dict(d["work_pool"].get("job_variables", {})),
            cron=next((sch["cron"] for sch in d.get("schedules") or [] if "cron" in sch), None),
        )
    if missing := [op.value for op in Operation if op not in found]:
        raise CatalogueError(f"prefect.yaml has no deployment for {', '.join(missing)}")
    return found


def workflow(operation: Operation) -> Workflow:
    return workflows()[operation]


def work_pool_name() -> str:
    """The one work pool every deployment uses."""
    pools = {w.work_pool for w in workflows().values()}
    if len(pools) != 1:
        raise CatalogueError(f"prefect.yaml deployments use several work pools: {sorted(pools)}")
    return pools.pop()
