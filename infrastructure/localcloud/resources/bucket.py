"""``localcloud_bucket``: a directory under the data dir; public ones are marked so by
their metadata. Like GCS, a non-empty bucket is only deleted with ``force_destroy``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tf.schema import Attribute, Schema
from tf.types import Bool, String

from infrastructure.localcloud.resources.base import State, StoredResource
from infrastructure.localcloud.store import data_dir, shared_url

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$")


def bucket_dir(name: str) -> Path:
    """GCS-style names (lowercase letters, digits, '-', '_'; 3-63): never a path."""
    if not _NAME.match(name):
        raise ValueError(f"invalid bucket name {name!r}: 3-63 of a-z, 0-9, '-' and '_'")
    return data_dir() / "bucket-data" / name


class Bucket(StoredResource):
    type_name = "bucket"
    kind = "buckets"
    id_prefix = "b"
    schema = Schema(
        version=1,
        attributes=[
            Attribute("id", String(), computed=True, description="Bucket id."),
            Attribute("name", String(), required=True, requires_replace=True, description="Bucket name."),
            Attribute("public", Bool(), optional=True, description="Readable by anyone."),
            Attribute("force_destroy", Bool(), optional=True, description="Delete even when not empty."),
            Attribute("url", String(), computed=True, description="Where the objects live."),
        ],
    )

    def validate(self, diags, type_name, config):  # type: ignore[no-untyped-def]
        super().validate(diags, type_name, config)
        name = config.get("name")
        if isinstance(name, str) and not _NAME.match(name):
            diags.add_error(f"invalid bucket name {name!r}", "3-63 of a-z, 0-9, '-' and '_'")

    def on_create(self, state: State) -> State:
        if shared_url():  # a shared localcloud: the stored object is the bucket
            return {"url": f"localcloud://buckets/{state['name']}"}
        path = bucket_dir(state["name"])
        path.mkdir(parents=True, exist_ok=False)
        return {"url": path.as_uri()}

    def on_delete(self, current: State) -> None:
        if shared_url():
            return
        path = bucket_dir(current["name"])
        if path.exists() and any(path.iterdir()) and not current.get("force_destroy"):
            raise ValueError(f"bucket {current['name']} is not empty (set force_destroy to delete it anyway)")
        shutil.rmtree(path, ignore_errors=True)

    def exists(self, stored: State) -> bool:
        return bool(shared_url()) or bucket_dir(stored["name"]).is_dir()
