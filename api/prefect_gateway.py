"""The gateway's only door to Prefect: create flow runs from deployments, read their
states, results (as artifacts), tasks and logs. A client is opened per call because a
Prefect client is bound to the event loop it was opened on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
)
from prefect.client.schemas.sorting import LogSort

from flows.provision import read_published

FAILED_STATES = {"FAILED", "CRASHED", "CANCELLED", "CANCELLING"}


@dataclass(frozen=True)
class FlowRunView:
    id: str
    state_type: str
    state_name: str
    message: str

    @property
    def completed(self) -> bool:
        return self.state_type == "COMPLETED"

    @property
    def failed(self) -> bool:
        return self.state_type in FAILED_STATES and self.state_type != "CANCELLING"


def one_line(message: str | None) -> str:
    """Prefect's state messages can span lines and carry a generic prefix."""
    text = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    for prefix in ("Flow run encountered an exception: ", "Task run encountered an exception: "):
        text = text.removeprefix(prefix)
    return text[:500]


class PrefectGateway:
    def __init__(self) -> None:
        self._deployment_ids: dict[str, UUID] = {}

    async def healthy(self) -> str | None:
        """None when Prefect answers, else why not."""
        try:
            async with get_client() as client:
                error = await client.api_healthcheck()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if error is None else f"{type(error).__name__}: {error}"

    async def create_flow_run(
        self, deployment: str, parameters: dict[str, Any], *, idempotency_key: str, tags: list[str]
    ) -> str:
        """Idempotent: the same key returns the same flow run, so a retry after a lost
        answer never runs Terraform twice."""
        async with get_client() as client:
            deployment_id = self._deployment_ids.get(deployment)
            if deployment_id is None:
                deployment_id = (await client.read_deployment_by_name(deployment)).id
                self._deployment_ids[deployment] = deployment_id
            flow_run = await client.create_flow_run_from_deployment(
                deployment_id, parameters=parameters, idempotency_key=idempotency_key, tags=tags
            )
        return str(flow_run.id)

    async def read_flow_runs(self, ids: list[str]) -> dict[str, FlowRunView]:
        if not ids:
            return {}
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in ids]))
            )
        return {
            str(r.id): FlowRunView(
                id=str(r.id),
                state_type=r.state.type.value if r.state else "PENDING",
                state_name=(r.state.name if r.state else None) or "Pending",
                message=one_line(r.state.message if r.state else ""),
            )
            for r in runs
        }

    async def read_result(self, flow_run_id: str) -> dict[str, Any] | None:
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]))
            )
        for artifact in artifacts:
            if artifact.key and isinstance(artifact.data, str):
                return read_published(artifact.data)
        return None

    async def read_tasks(self, flow_run_id: str) -> list[dict[str, Any]]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])),
                task_run_filter=TaskRunFilter(),
            )
        ordered = sorted(runs, key=lambda r: (r.start_time is None, r.start_time or r.created))
        return [
            {
                "name": r.name,
                "state": r.state.name if r.state else None,
                "start_time": r.start_time,
                "end_time": r.end_time,
                "message": one_line(r.state.message if r.state else ""),
            }
            for r in ordered
        ]

    async def read_logs(self, flow_run_id: str, limit: int = 2000) -> list[str]:
        """The server pages logs 200 at a time."""
        lines: list[str] = []
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)]))
        async with get_client() as client:
            while len(lines) < limit:
                page = await client.read_logs(
                    log_filter=log_filter, limit=200, offset=len(lines), sort=LogSort.TIMESTAMP_ASC
                )
                lines.extend(f"{log.timestamp.isoformat()} {log.message}" for log in page)
                if len(page) < 200:
                    break
        return lines[:limit]
