"""``localcloud_secret``: the local secret store. Objects are 0600 files in the data dir;
values are read through the provider (Terraform) or ``read_secret`` (the app)."""

from __future__ import annotations

from tf.schema import Attribute, Schema
from tf.types import Map, String

from infrastructure.localcloud.resources.base import State, StoredResource
from infrastructure.localcloud.store import Store

REFERENCE_PREFIX = "localcloud/secrets/"


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

    def on_create(self, state: State) -> State:
        return {"reference": REFERENCE_PREFIX + state["id"]}


def read_secret(reference: str, store: Store | None = None) -> str:
    """The app's side of the store: the value behind a ``localcloud/secrets/<id>`` reference."""
    if not reference.startswith(REFERENCE_PREFIX):
        raise ValueError(f"not a localcloud secret reference: {reference!r}")
    found = (store or Store(Secret.kind)).get(reference.removeprefix(REFERENCE_PREFIX))
    if found is None:
        raise KeyError(f"secret {reference} does not exist")
    return str(found["value"])
