"""Rules of clients: accepting a client and its first provision (idempotently), starting
an operation on it, changing its inputs, labels or settings, retrying its last run,
upgrading it to another module revision, reading it. Whether a client takes a request is
decided by ``Client``'s own methods.

A new client is built with its target's newest module revision (the module as on disk,
recorded) and stays pinned to it: every later run uses the client's revision, and only an
upgrade (a provision of another revision) moves it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.clients import store
from api.clients.filters import ClientFilter
from api.clients.labels import validated
from api.errors import Conflict, InvalidInput, NotFound
from api.keys import caller_name
from api.merge_patch import merge_patch, value_at
from api.registry.db import Registry
from api.registry.models import Approval, Client, ClientStatus, InvalidTransition, Run, RunStatus, new_id
from api.runs import store as runs
from api.runs.store import Accepted, fingerprint
from flows.contract import Operation, PolicyOverride, Remediation, RolloutHint
from flows.settings import get_settings
from flows.targets import get_target
from flows.terraform.revisions import RevisionStore, UnknownRevision, revision_store


@dataclass(frozen=True)
class UniqueInFamily:
    """A value a sub-client must not share with its parent or its live siblings: what they
    hold in one namespace (a sub-hospital's database on its parent's SQL instance).
    ``key`` reads it from a client's inputs; ``field`` is the request field it comes from."""

    field: str
    what: str
    key: Callable[[dict[str, Any]], str]


def _frozen_error(path: str) -> dict[str, Any]:
    return {"loc": ["body", *path.split(".")], "msg": f"{path} cannot change once created", "type": "frozen"}


class ClientService:
    def __init__(
        self,
        registry: Registry,
        wake: Callable[[], None] = lambda: None,
        revisions: RevisionStore | None = None,
    ) -> None:
        self.registry = registry
        self.wake = wake
        self.revisions = revisions or revision_store(get_settings())

    def newest_revision(self, target: str) -> str:
        """The target's module as on disk, recorded (cheap and idempotent: a few files hashed)."""
        return self.revisions.current(get_target(target).module).id

    def _pinned(self, client: Client) -> str:
        """The revision a client's runs use: its own, or the newest while it has none yet
        (its first provision has not completed)."""
        return client.revision or self.newest_revision(client.target)

    # Accepting ---------------------------------------------------------------------------
    def create_client(
        self,
        *,
        kind: str,
        target: str,
        inputs: dict[str, Any],
        client_id: str | None = None,
        name: str | None = None,
        parent_id: str | None = None,
        idempotency_key: str | None = None,
        unique: UniqueInFamily | None = None,
        labels: dict[str, str] | None = None,
    ) -> Accepted:
        """A new client and its first provision run, in one transaction.

        With a given ``client_id`` (hospitals) the same body again returns the same
        request and another body is a conflict; so does an ``Idempotency-Key``. With
        ``unique``, a sub-client whose value clashes with its parent's or a live sibling's
        is a conflict naming the field.
        """
        labels = validated(labels or {})
        body = {"kind": kind, "target": target, "inputs": inputs, "parent": parent_id}
        body_print = fingerprint({**body, "labels": labels} if labels else body)
        if idempotency_key and (same := self._by_idempotency_key(idempotency_key, body_print)):
            return same
        if client_id or parent_id:
            with self.registry.session() as session:
                if client_id and (existing := session.get(Client, client_id)):
                    return runs.first_provision(session, existing, body_print)
                if parent_id and session.get(Client, parent_id) is None:
                    raise NotFound(f"parent client {parent_id} not found")
        cid = client_id or new_id()
        revision = self.newest_revision(target)
        try:
            with self.registry.session() as session:
                if parent_id and unique is not None:
                    self._require_unique_in_family(session, parent_id, cid, inputs, unique)
                client = Client(
                    id=cid,
                    kind=kind,
                    target=target,
                    name=name,
                    parent_id=parent_id,
                    inputs=inputs,
                    labels=labels,
                    fingerprint=body_print,
                    status=ClientStatus.pending,
                )
                session.add(client)
                run = runs.add(
                    session, client, Operation.provision, idempotency_key, body_print, revision=revision
                )
        except IntegrityError:
            # A concurrent identical request won the race: answer with its run.
            if idempotency_key and (same := self._by_idempotency_key(idempotency_key, body_print)):
                return same
            with self.registry.session() as session:
                if client_id and (existing := session.get(Client, client_id)):
                    return runs.first_provision(session, existing, body_print)
            raise
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def start_operation(
        self,
        client_id: str,
        operation: Operation,
        *,
        cascade: bool = False,
        idempotency_key: str | None = None,
        kinds: Sequence[str] | None = None,
    ) -> Accepted:
        """destroy, plan, create-tables... on an existing client (of one of ``kinds``)."""
        op_print = fingerprint({"client": client_id, "operation": operation.value, "cascade": cascade})
        if idempotency_key and (same := self._by_idempotency_key(idempotency_key, op_print)):
            return same
        with self.registry.session() as session:
            client = store.locked(session, client_id, kinds)
            client.require_accepting(operation, runs.open_run(session, client_id, Operation.destroy))
            if operation is Operation.destroy:
                live = [c for c in store.children(session, client_id) if c.status != ClientStatus.destroyed]
                client.require_destroyable(live, cascade=cascade)
                for child in live:
                    if not (destroy := runs.open_run(session, child.id, Operation.destroy)):
                        destroy = runs.add(
                            session, child, Operation.destroy, None, op_print, revision=self._pinned(child)
                        )
                    self._drop_awaiting(session, child.id, destroy)
            if pending := runs.open_run(session, client_id, operation):
                return Accepted(run=pending, client=client, created=False)
            run = runs.add(
                session, client, operation, idempotency_key, op_print, revision=self._pinned(client)
            )
            if operation is Operation.destroy:
                self._drop_awaiting(session, client_id, run)
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def update_client(
        self, client_id: str, patch: dict[str, Any], *, approval: Approval | None = None
    ) -> Accepted | None:
        """Merge ``patch`` into the client's inputs (RFC 7396), validate the result with the
        target's own model, and start a provision that applies the difference, with the
        client's own revision (never a newer one: that is an upgrade). The patch's ``labels``
        member merges into the client's labels instead, in the registry only: no run. None
        when the patch changes no input."""
        patch, relabel = dict(patch), "labels" in patch
        labels_patch = patch.pop("labels", None)
        if labels_patch is not None and not isinstance(labels_patch, dict):
            raise InvalidInput([{"loc": ["body", "labels"], "msg": "must be an object", "type": "dict_type"}])
        with self.registry.session() as session:
            client = store.locked(session, client_id)
            client.require_accepting(None, runs.open_run(session, client_id, Operation.destroy))
            if relabel:  # null: every label removed
                client.labels = validated(merge_patch(client.labels or {}, labels_patch) or {})
            if not patch:
                return None
            target = get_target(client.target)
            merged = merge_patch(client.inputs, patch)
            frozen = [p for p in target.immutable if value_at(merged, p) != value_at(client.inputs, p)]
            if frozen:
                raise InvalidInput([_frozen_error(p) for p in frozen])
            try:
                inputs = target.parse_inputs(merged).model_dump(mode="json")
            except ValidationError as exc:
                raise InvalidInput(
                    [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
                ) from None
            if inputs == target.parse_inputs(client.inputs).model_dump(mode="json"):
                return None
            client.inputs = inputs
            body_print = fingerprint({"client": client_id, "patch": patch, "inputs": inputs})
            run = runs.add(
                session,
                client,
                Operation.provision,
                None,
                body_print,
                approval=approval,
                revision=self._pinned(client),
            )
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def retry(self, client_id: str, *, approval: Approval | None = None) -> Accepted:
        """The client's last run again, same operation and inputs, when it failed."""
        with self.registry.session() as session:
            client = store.locked(session, client_id)
            client.require_accepting(None, runs.open_run(session, client_id, Operation.destroy))
            last = client.require_retryable(runs.latest(session, client_id))
            operation, repeated = Operation(last.operation), runs.parameters(last)
            # The same revision too: a failed upgrade retried is that upgrade again.
            revision = repeated.revision or self._pinned(client)
            run = runs.add(
                session,
                client,
                operation,
                None,
                last.fingerprint,
                repeated.inputs,
                approval,
                revision=revision,
            )
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def override(self, run_id: str, reason: str) -> Accepted:
        """A run denied by soft-mandatory policies again, same operation and inputs, carrying
        the override (who, why, which policies) in its flow parameters. 409 unless it is its
        client's last run and only soft-mandatory policies denied it."""
        with self.registry.session() as session:
            denied = runs.get(session, run_id)
            client = store.locked(session, denied.client_id)
            client.require_accepting(None, runs.open_run(session, client.id, Operation.destroy))
            last = client.require_retryable(runs.latest(session, client.id))
            if last.id != denied.id:
                raise InvalidTransition(f"run {run_id} is not client {client.id}'s last run ({last.id} is)")
            params = runs.parameters(denied)
            override = PolicyOverride(
                by=caller_name.get() or "unknown",
                reason=reason,
                policies=denied.overridable_policies(),
                overrides_run=denied.id,
            )
            approval = Approval.required if params.approval_required else Approval.auto
            run = runs.add(
                session,
                client,
                Operation(denied.operation),
                None,
                denied.fingerprint,
                params.inputs,
                approval,
                policy_override=override,
                revision=params.revision or self._pinned(client),
            )
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def upgrade(
        self,
        client_id: str,
        revision: str,
        *,
        approval: Approval | None = None,
        rollout: RolloutHint | None = None,
    ) -> Accepted:
        """A provision run with another module revision of the client's target: the client
        moves to it when the run completes and stays where it was when it fails. The same
        revision again is a provision like any other."""
        with self.registry.session() as session:
            client = store.locked(session, client_id)
            client.require_accepting(
                Operation.provision, runs.open_run(session, client_id, Operation.destroy)
            )
            if client.gone:
                raise InvalidTransition(f"client {client.id} is {client.status}; it cannot be upgraded")
            try:
                self.revisions.get(get_target(client.target).module, revision)
            except UnknownRevision as exc:
                raise Conflict(f"client {client.id} ({client.target}) cannot be upgraded: {exc}") from None
            body_print = fingerprint({"client": client_id, "upgrade": revision})
            run = runs.add(
                session,
                client,
                Operation.provision,
                None,
                body_print,
                approval=approval,
                revision=revision,
                rollout=rollout,
            )
        self.wake()
        return Accepted(run=run, client=client, created=True)

    def configure(
        self,
        client_id: str,
        *,
        approval: Approval | None = None,
        remediation: Remediation | None = None,
        callback_url: str | None = None,
        set_callback: bool = False,
    ) -> Client:
        with self.registry.session() as session:
            client = store.get(session, client_id)
            client.require_live()
            if approval is not None:
                client.approval = approval
            if remediation is not None:
                client.remediation = remediation
            if set_callback:
                client.callback_url = callback_url
            return client

    # Reading -----------------------------------------------------------------------------
    def get_client(self, client_id: str, kinds: Sequence[str] | None = None) -> tuple[Client, Run | None]:
        with self.registry.session() as session:
            client = store.get(session, client_id, kinds)
            return client, runs.latest(session, client_id)

    def list_clients(
        self,
        *,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        filters: ClientFilter | None = None,
        client_id: str | None = None,
        sweepable: bool = False,
    ) -> tuple[list[Client], int]:
        query = (filters or ClientFilter()).apply(
            select(Client), kinds, client_id=client_id, sweepable=sweepable
        )
        with self.registry.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            ordered = query.order_by(Client.created_at, Client.id)
            rows = session.scalars(ordered.limit(limit).offset(offset)).all()
            return list(rows), total

    def children(self, client_id: str) -> list[Client]:
        with self.registry.session() as session:
            return store.children(session, client_id)

    # Internals ---------------------------------------------------------------------------
    def _by_idempotency_key(self, key: str, body_print: str) -> Accepted | None:
        with self.registry.session() as session:
            return runs.by_idempotency_key(session, key, body_print)

    def _drop_awaiting(self, session: Session, client_id: str, destroy: Run) -> None:
        """A plan awaiting approval would apply to a stack the destroy removes: it ends
        cancelled, saying why, and the destroy waits until Prefect has ended it."""
        awaiting = session.scalars(
            select(Run).where(Run.client_id == client_id, Run.status == RunStatus.awaiting_approval)
        ).all()
        for run in awaiting:
            if run.cancel_reason is None:
                run.request_cancel(f"the client is being destroyed (run {destroy.id})")

    def _require_unique_in_family(
        self, session: Session, parent_id: str, client_id: str, inputs: dict[str, Any], unique: UniqueInFamily
    ) -> None:
        """Under the parent's lock, so two sub-clients registered at once are told apart."""
        parent = store.locked(session, parent_id)
        value = unique.key(inputs)
        for other in [parent, *store.children(session, parent_id)]:
            if other.id == client_id or other.status == ClientStatus.destroyed:
                continue
            if unique.key(other.inputs) == value:
                who = "its parent" if other is parent else f"sub-client {other.id}"
                name = f" ({other.name})" if other.name else ""
                raise Conflict(
                    f"{unique.field} gives the {unique.what} {value!r}, which {who}{name} already uses "
                    f"on {parent_id}: choose another {unique.field}"
                )
