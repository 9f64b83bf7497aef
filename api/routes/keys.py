"""API keys, for admin-scoped callers: create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from api.auth import AdminKey
from api.errors import NotFound
from api.keys import KeyService
from api.responses import BAD_BODY, GUARDED, NOT_FOUND
from api.schemas import KeyCreate, KeyCreated, KeyView

router = APIRouter(
    prefix="/api/keys", tags=["keys"], dependencies=[AdminKey], responses={**BAD_BODY, **GUARDED}
)


def _keys(request: Request) -> KeyService:
    return request.app.state.keys  # type: ignore[no-any-return]


Keys = Annotated[KeyService, Depends(_keys)]


@router.post("", status_code=201, response_model=KeyCreated)
def create_key(body: KeyCreate, keys: Keys) -> KeyCreated:
    """The key is in this answer only; the gateway keeps its SHA-256."""
    row, key = keys.create(body.name, body.scope)
    return KeyCreated(**KeyView.of(row).model_dump(), key=key)


@router.get("", response_model=list[KeyView])
def list_keys(keys: Keys) -> list[KeyView]:
    return [KeyView.of(k) for k in keys.list()]


@router.delete("/{key_id}", response_model=KeyView, responses=NOT_FOUND)
def revoke_key(key_id: UUID, keys: Keys) -> KeyView:
    """Takes effect on the key's next request: no restart."""
    row = keys.revoke(str(key_id))
    if row is None:
        raise NotFound(f"key {key_id} not found")
    return KeyView.of(row)
