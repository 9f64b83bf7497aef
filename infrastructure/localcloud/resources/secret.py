"""``localcloud_secret``: the local secret store. Objects are 0600 files in the data dir;
values are read through the provider (Terraform) or ``read_secret`` (the app)."""

from __future__ import annotations

import re

from tf.schema import Attribute, Schema
from tf.types import Map, String

from infrastructure.localcloud.resources.base import State, StoredResource
from infrastructure.localcloud.store import ObjectStore, open_store

REFERENCE_PREFIX = "localcloud/secrets/"
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")  # Secret Manager's rule


class Secret(StoredResource):
    type_name = "secret"
    kind = "secrets"
    id_prefix = "s"
    private = True
    schema = Schema(
        version=1,
        attributes=[
            Attribute("id", String(), computed=True, description="Secret id."),
            Attribute(
                "secret_id", String(), required=True, requires_replace=True, description="Secret name."
            ),
            Attribute("value", String(), required=True, sensitive=True, description="The secret value."),
            Attribute("reference", String(), computed=True, description="What the app reads it by."),
            Attribute("labels", Map(String()), optional=True, description="Free-form labels."),
        ],
    )

    def validate(self, diags, type_name, config):  # type: ignore[no-untyped-def]
        super().validate(diags, type_name, config)
        secret_id = config.get("secret_id")
        if isinstance(secret_id, str) and not _SECRET_ID.match(secret_id):
            diags.add_error(f"invalid secret_id {secret_id!r}", "1-255 of A-Z, a-z, 0-9, '-' and '_'")

    def on_create(self, state: State) -> State:
        return {"reference": REFERENCE_PREFIX + state["id"]}


def read_secret(reference: str, store: ObjectStore | None = None) -> str:
    """The app's side of the store: the value behind a ``localcloud/secrets/<id>`` reference."""
    if not reference.startswith(REFERENCE_PREFIX):
        raise ValueError(f"not a localcloud secret reference: {reference!r}")
    found = (store or open_store(Secret.kind)).get(reference.removeprefix(REFERENCE_PREFIX))
    if found is None:
        raise KeyError(f"secret {reference} does not exist")
    return str(found["value"])
