"""The Airflow document's API: POST /provision and GET /status/{request_id}."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header

from api.auth import KeyOrBasic
from api.deps import Clients, Runs
from api.responses import CONFLICT, GUARDED, NOT_FOUND
from api.schemas import ProvisionRequest, ProvisionResponse
from flows.targets import by_cloud_provider

router = APIRouter(tags=["provision"], dependencies=[KeyOrBasic], responses={**GUARDED})

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Same key and body: the same request back; same key, other body: 409.",
    ),
]


@router.post("/provision", status_code=202, response_model=ProvisionResponse, responses=CONFLICT)
def provision(
    body: ProvisionRequest,
    clients: Clients,
    idempotency_key: IdempotencyKey = None,
) -> ProvisionResponse:
    """Accept a request for ``count`` instances; a flow run builds them (``labels``: the
    client's, kept apart from its inputs)."""
    target = by_cloud_provider()[body.cloud_provider]
    accepted = clients.create_client(
        kind="instances",
        target=target.name,
        inputs=body.model_dump(mode="json", exclude={"labels"}),
        name=body.instance_name_prefix,
        idempotency_key=idempotency_key,
        labels=body.labels,
    )
    return ProvisionResponse.of(accepted.run)


@router.get("/status/{request_id}", response_model=ProvisionResponse, responses=NOT_FOUND)
def status(request_id: UUID, runs: Runs) -> ProvisionResponse:
    return ProvisionResponse.of(runs.get_run(str(request_id)))
