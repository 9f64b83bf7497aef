"""The catalogue's targets and their module revisions: which is newest (what new clients
get) and which clients are pinned to each."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import ApiKey
from api.deps import Targets
from api.responses import GUARDED, NOT_FOUND
from api.schemas import RevisionList, RevisionUse, RevisionView, TargetList, TargetView

router = APIRouter(prefix="/api", tags=["targets"], dependencies=[ApiKey], responses={**GUARDED})


@router.get("/targets", response_model=TargetList)
def list_targets(targets: Targets) -> TargetList:
    """Each target with its module's newest revision (the module as on disk) and its clients."""
    return TargetList(
        targets=[
            TargetView(
                name=use.target.name,
                description=use.target.description,
                module=use.target.module,
                newest_revision=RevisionView.of(use.newest),
                clients=use.clients,
                clients_on_newest=use.on_newest,
            )
            for use in targets.targets()
        ]
    )


@router.get("/targets/{target}/revisions", response_model=RevisionList, responses=NOT_FOUND)
def target_revisions(target: str, targets: Targets) -> RevisionList:
    """Every revision of the target's module, oldest first, with the clients pinned to it:
    move one with POST /api/clients/{client_uuid}/upgrade."""
    entry, uses, unpinned = targets.revisions(target)
    return RevisionList(
        target=entry.name,
        module=entry.module,
        revisions=[
            RevisionUse(
                **RevisionView.of(use.revision).model_dump(),
                newest=use.newest,
                clients=use.clients,
                client_uuids=use.client_ids,
            )
            for use in uses
        ],
        unpinned=unpinned,
    )
