"""A directory of JSON objects, one file per object, grouped by kind."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

DATA_DIR_ENV = "LOCALCLOUD_DATA_DIR"


def data_dir() -> Path:
    """The provider's root; required so objects never land in a surprising place."""
    raw = os.environ.get(DATA_DIR_ENV)
    if not raw:
        raise RuntimeError(f"{DATA_DIR_ENV} is not set: localcloud does not know where to keep objects")
    return Path(raw)


class Store:
    """Objects of one kind; writes are atomic (temp file + rename)."""

    def __init__(self, kind: str, root: Path | None = None) -> None:
        self.dir = (root or data_dir()) / kind
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{secrets.token_hex(6)}"

    def path(self, object_id: str) -> Path:
        if "/" in object_id or object_id.startswith("."):
            raise ValueError(f"invalid object id {object_id!r}")
        return self.dir / f"{object_id}.json"

    def get(self, object_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(object_id).read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def put(self, object_id: str, value: dict[str, Any], *, private: bool = False) -> None:
        target = self.path(object_id)
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(value, fh, indent=2, sort_keys=True)
        os.replace(tmp, target)

    def delete(self, object_id: str) -> None:
        self.path(object_id).unlink(missing_ok=True)

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("*.json"))]
