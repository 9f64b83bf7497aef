"""``localcloud_network``: a named private network with a CIDR."""

from __future__ import annotations

import hashlib

from tf.schema import Attribute, Schema
from tf.types import Map, String

from infrastructure.localcloud.resources.base import State, StoredResource


class Network(StoredResource):
    type_name = "network"
    kind = "networks"
    id_prefix = "net"
    schema = Schema(
        version=1,
        attributes=[
            Attribute("id", String(), computed=True, description="Network id."),
            Attribute("name", String(), required=True, requires_replace=True, description="Network name."),
            Attribute("cidr", String(), computed=True, description="Private range."),
            Attribute("labels", Map(String()), optional=True, description="Free-form labels."),
        ],
    )

    def on_create(self, state: State) -> State:
        octet = hashlib.sha256(state["name"].encode()).digest()[0]
        return {"cidr": f"10.{octet}.0.0/16"}
