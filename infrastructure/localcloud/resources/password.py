"""``localcloud_password``: a random password, standing in for hashicorp/random's
``random_password`` (which cannot be downloaded offline). Base64 alphabet, as the
hospital document asks."""

from __future__ import annotations

import secrets
import string

from tf.schema import Attribute, Schema
from tf.types import Number, String

from infrastructure.localcloud.resources.base import State, StoredResource

ALPHABET = string.ascii_letters + string.digits + "+/"


class Password(StoredResource):
    type_name = "password"
    kind = "passwords"
    id_prefix = "pw"
    private = True
    schema = Schema(
        version=1,
        attributes=[
            Attribute("id", String(), computed=True, description="Password id."),
            Attribute("length", Number(), required=True, requires_replace=True, description="Length (>= 8)."),
            Attribute("result", String(), computed=True, sensitive=True, description="The password."),
        ],
    )

    def on_create(self, state: State) -> State:
        length = int(state["length"])
        if length < 8:
            raise ValueError("length must be at least 8")
        return {"result": "".join(secrets.choice(ALPHABET) for _ in range(length))}
