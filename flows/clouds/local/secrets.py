"""Reading the secret a local hospital's outputs name (``connection_secret``) from the
localcloud store of this data dir. Values are returned to the caller only: never logged,
never put in an exception."""

from __future__ import annotations

from flows.settings import Settings
from infrastructure.localcloud.resources.secret import Secret
from infrastructure.localcloud.resources.secret import read_secret as read_localcloud_secret
from infrastructure.localcloud.store import open_store


def read_local_secret(reference: str, settings: Settings) -> str:
    """``localcloud/secrets/<id>`` from the localcloud store of this data dir."""
    return read_localcloud_secret(reference, open_store(Secret.kind, root=settings.root / "localcloud"))
