"""``localcloud_bucket``: a directory; public ones are marked so by their metadata."""

from __future__ import annotations

import shutil

from tf.schema import Attribute, Schema
from tf.types import Bool, String

from infrastructure.localcloud.resources.base import State, StoredResource
from infrastructure.localcloud.store import data_dir


def bucket_dir(name: str):  # type: ignore[no-untyped-def]
    if "/" in name or name.startswith("."):
        raise ValueError(f"invalid bucket name {name!r}")
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

    def on_create(self, state: State) -> State:
        path = bucket_dir(state["name"])
        path.mkdir(parents=True, exist_ok=False)
        return {"url": path.as_uri()}

    def on_delete(self, current: State) -> None:
        path = bucket_dir(current["name"])
        if path.exists() and any(path.iterdir()) and not current.get("force_destroy"):
            raise ValueError(f"bucket {current['name']} is not empty (set force_destroy)")
        shutil.rmtree(path, ignore_errors=True)
