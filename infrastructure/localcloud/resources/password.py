"""``localcloud_password``: a random password, standing in for hashicorp/random's
``random_password`` (which cannot be downloaded offline). Characters come from the
base64 alphabet, as the hospital document asks; ``special`` adds its two non-alphanumerics
("+" and "/"), like ``random_password`` with ``override_special = "+/"``."""

from __future__ import annotations

import secrets
import string

from tf.schema import Attribute, Schema
from tf.types import Bool, Number, String

from infrastructure.localcloud.resources.base import State, StoredResource

ALPHANUMERIC = string.ascii_letters + string.digits
SPECIAL = "+/"
MIN_LENGTH, MAX_LENGTH = 8, 128


def generate(length: int, special: bool) -> str:
    alphabet = ALPHANUMERIC + (SPECIAL if special else "")
    return "".join(secrets.choice(alphabet) for _ in range(length))


class Password(StoredResource):
    type_name = "password"
    kind = "passwords"
    id_prefix = "pw"
    private = True
    schema = Schema(
        version=1,
        attributes=[
            Attribute("id", String(), computed=True, description="Password id."),
            Attribute(
                "length",
                Number(),
                required=True,
                requires_replace=True,
                description=f"Length ({MIN_LENGTH}-{MAX_LENGTH}).",
            ),
            Attribute(
                "special",
                Bool(),
                optional=True,
                requires_replace=True,
                description="Also use '+' and '/' (default false: letters and digits only).",
            ),
            Attribute("result", String(), computed=True, sensitive=True, description="The password."),
        ],
    )

    def validate(self, diags, type_name, config):  # type: ignore[no-untyped-def]
        super().validate(diags, type_name, config)
        length = config.get("length")
        if isinstance(length, int | float) and not MIN_LENGTH <= length <= MAX_LENGTH:
            diags.add_error(
                f"invalid length {length}", f"length must be between {MIN_LENGTH} and {MAX_LENGTH}"
            )

    def on_create(self, state: State) -> State:
        length = int(state["length"])
        if not MIN_LENGTH <= length <= MAX_LENGTH:
            raise ValueError(f"length must be between {MIN_LENGTH} and {MAX_LENGTH}")
        return {"result": generate(length, bool(state.get("special")))}
