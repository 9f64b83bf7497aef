"""What GET /api/targets and GET /api/targets/{target}/revisions read: the catalogue, the
revision store and, from the registry, how many clients are pinned to each revision."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select

from api.clients.service import ClientService
from api.errors import NotFound
from api.registry.models import Client, ClientStatus
from flows.targets import Target, UnknownTarget, all_targets, get_target
from flows.terraform.revisions import Revision

MAX_IDS = 1000
"""Client ids listed per revision; the count is always whole."""


@dataclass(frozen=True)
class TargetUse:
    target: Target
    newest: Revision
    clients: int
    on_newest: int


@dataclass(frozen=True)
class RevisionUse:
    revision: Revision
    newest: bool
    clients: int
    client_ids: list[str]


class TargetService:
    def __init__(self, clients: ClientService) -> None:
        self.clients = clients
        self.registry = clients.registry
        self.store = clients.revisions

    def targets(self) -> list[TargetUse]:
        counts = self._counts()
        found = []
        for target in all_targets().values():
            newest = self.store.current(target.module)
            pinned = counts.get(target.name, Counter())
            found.append(TargetUse(target, newest, sum(pinned.values()), pinned[newest.id]))
        return found

    def revisions(self, name: str) -> tuple[Target, list[RevisionUse], int]:
        """Each revision of the target's module, oldest first, with the clients pinned to it;
        and how many clients are pinned to none the store holds."""
        try:
            target = get_target(name)
        except UnknownTarget:
            raise NotFound(f"no target {name!r}; GET /api/targets lists them") from None
        newest = self.store.current(target.module)
        pinned = self._counts().get(target.name, Counter())
        uses = []
        with self.registry.session() as session:
            for revision in self.store.list(target.module):
                ids = session.scalars(
                    select(Client.id)
                    .where(Client.target == target.name, Client.revision == revision.id)
                    .where(Client.status != ClientStatus.destroyed)
                    .order_by(Client.created_at, Client.id)
                    .limit(MAX_IDS)
                ).all()
                uses.append(RevisionUse(revision, revision.id == newest.id, pinned[revision.id], list(ids)))
        known = {u.revision.id for u in uses}
        unpinned = sum(n for rev, n in pinned.items() if rev not in known)
        return target, uses, unpinned

    def _counts(self) -> dict[str, Counter[str | None]]:
        """target → revision → live clients pinned to it."""
        counts: dict[str, Counter[str | None]] = {}
        with self.registry.session() as session:
            rows = session.execute(
                select(Client.target, Client.revision, func.count())
                .where(Client.status != ClientStatus.destroyed)
                .group_by(Client.target, Client.revision)
            ).all()
        for target, revision, n in rows:
            counts.setdefault(target, Counter())[revision] = n
        return counts
