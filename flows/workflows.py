"""The workflow catalogue, read from ``prefect.yaml``: the one place deployments are
declared. The gateway names deployments through it; ``deployments/`` applies it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"


@dataclass(frozen=True)
class Workflow:
    name: str
    entrypoint: str
    description: str
    work_pool: str
    tags: tuple[str, ...]
    job_variables: dict[str, Any] = field(default_factory=dict)

    @property
    def flow_name(self) -> str:
        """Our flows are named like their deployments (``@flow(name=...)``)."""
        return self.entrypoint.rsplit(":", 1)[1].replace("_", "-")

    @property
    def deployment_name(self) -> str:
        """``flow/deployment``, as ``run_deployment`` wants it."""
        return f"{self.flow_name}/{self.name}"


@lru_cache
def workflows() -> dict[str, Workflow]:
    raw = yaml.safe_load(PREFECT_YAML.read_text())
    return {
        d["name"]: Workflow(
            name=d["name"],
            entrypoint=d["entrypoint"],
            description=d.get("description", ""),
            work_pool=d["work_pool"]["name"],
            tags=tuple(d.get("tags", [])),
            job_variables=dict(d["work_pool"].get("job_variables", {})),
        )
        for d in raw["deployments"]
    }


def workflow(name: str) -> Workflow:
    return workflows()[name]
