"""``localcloud_instance``: a pretend VM with stable private and public addresses."""

from __future__ import annotations

import hashlib

from tf.schema import Attribute, Schema
from tf.types import Map, String

from infrastructure.localcloud.resources.base import State, StoredResource

SIZES = ("small", "medium", "large", "bare-metal")


def _addresses(object_id: str) -> tuple[str, str]:
    digest = hashlib.sha256(object_id.encode()).digest()
    return f"10.{digest[0]}.{digest[1]}.{digest[2] % 250 + 2}", f"203.0.113.{digest[3] % 250 + 2}"


class Instance(StoredResource):
    type_name = "instance"
    kind = "instances"
    id_prefix = "i"
    schema = Schema(
        version=1,
        attributes=[
            Attribute("id", String(), computed=True, description="Instance id."),
            Attribute("name", String(), required=True, requires_replace=True, description="Instance name."),
            Attribute("size", String(), required=True, description="One of " + ", ".join(SIZES)),
            Attribute("tags", Map(String()), optional=True, description="Free-form labels."),
            Attribute("private_ip", String(), computed=True, description="Private address."),
            Attribute("public_ip", String(), computed=True, description="Public address."),
        ],
    )

    def validate(self, diags, type_name, config):  # type: ignore[no-untyped-def]
        super().validate(diags, type_name, config)
        size = config.get("size")
        if isinstance(size, str) and size not in SIZES:
            diags.add_error(f"invalid size {size!r}", f"size must be one of {', '.join(SIZES)}")

    def on_create(self, state: State) -> State:
        private_ip, public_ip = _addresses(state["id"])
        return {"private_ip": private_ip, "public_ip": public_ip}
