"""Shared lifecycle for resources kept as JSON objects in a ``Store``.

Subclasses declare a schema and, where they touch something real (a database, a
directory), override the ``on_*`` hooks and ``exists``. ``read`` reflects the stored
object and asks ``exists`` whether the real thing is still there, so an object (or its
database, its directory) deleted or edited out of band shows as drift.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tf import iface
from tf.iface import CreateContext, DeleteContext, ReadContext, UpdateContext
from tf.schema import Schema
from tf.types import Unknown

from infrastructure.localcloud import faults
from infrastructure.localcloud.store import ObjectStore, open_store

State = dict[str, Any]


class StoredResource(iface.Resource):
    type_name: ClassVar[str]
    kind: ClassVar[str]
    id_prefix: ClassVar[str]
    schema: ClassVar[Schema]
    private: ClassVar[bool] = False
    """Objects that hold secrets are written mode 0600."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return cls.type_name

    @classmethod
    def get_schema(cls) -> Schema:
        return cls.schema

    @property
    def store(self) -> ObjectStore:
        return open_store(self.kind)

    # Hooks -------------------------------------------------------------------------------
    def on_create(self, state: State) -> State:
        """Return the computed attributes of a new object."""
        return {}

    def on_update(self, current: State, planned: State) -> State:
        return {}

    def on_delete(self, current: State) -> None:
        pass

    def exists(self, stored: State) -> bool:
        """Whether the real thing behind a stored object is still there (a file, a database)."""
        return True

    # Lifecycle ---------------------------------------------------------------------------
    def create(self, ctx: CreateContext, planned: State) -> State | None:
        faults.api_round_trip()
        try:
            faults.before_create(str(planned.get("name") or ""))
            state = dict(planned)
            state["id"] = self.store.new_id(self.id_prefix)
            state.update(self.on_create(state))
        except Exception as exc:
            ctx.diagnostics.add_error(f"{self.type_name}: {exc}", str(exc))
            return None
        self.store.put(state["id"], state, private=self.private)
        return state

    def read(self, ctx: ReadContext, current: State) -> State | None:
        faults.api_round_trip()
        stored = self.store.get(current["id"])
        if stored is None:
            return None
        try:
            present = self.exists(stored)
        except Exception as exc:  # cannot tell: an error, never a planned re-create
            ctx.diagnostics.add_error(f"{self.type_name}: cannot read {current['id']}: {exc}", str(exc))
            return current
        if not present:  # Terraform forgets it and plans a create: so does the store
            self.store.delete(current["id"])
            return None
        return {k: stored.get(k, v) for k, v in current.items()}

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        faults.api_round_trip()
        state = {**current, **{k: v for k, v in planned.items() if v is not Unknown}}
        try:
            state.update(self.on_update(current, state))
        except Exception as exc:
            ctx.diagnostics.add_error(f"{self.type_name}: {exc}", str(exc))
            return current
        self.store.put(state["id"], state, private=self.private)
        return state

    def delete(self, ctx: DeleteContext, current: State) -> None:
        faults.api_round_trip()
        try:
            self.on_delete(current)
        except Exception as exc:
            ctx.diagnostics.add_error(f"{self.type_name}: {exc}", str(exc))
            return
        self.store.delete(current["id"])
