"""The hospital document's stacks: a hospital (SQL instance, buckets, secret, network) and
sub-hospitals that share their parent's SQL instance. The same request model drives the
embedded default (localcloud, which uses these models as they are) and GCP
(``flows.clouds.gcp`` adds the project)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from flows.clouds.base import StackContext
from flows.settings import Settings
from flows.terraform.backends import BackendConfig, BackendPolicy

Region = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]+-[a-z]+[0-9]+$"),
    Field(description="A GCP-style region, e.g. me-central2.", examples=["me-central2"]),
]


def database_name(hospital_name: str, client_uuid: UUID | None = None) -> str:
    """The document names the database from the hospital: lowercase ASCII letters, digits
    and '_', starting with a letter, at most 64 characters. A name with nothing in ASCII
    (e.g. written in Arabic) would sanitise to a bare ``db``, the same for every such
    hospital: then the client's UUID tells the databases apart."""
    ascii_name = unicodedata.normalize("NFKD", hospital_name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    if not name and client_uuid is not None:
        name = f"db_{client_uuid.hex[:12]}"
    if not name or not name[0].isalpha():
        name = f"db_{name}".rstrip("_")
    return name[:64].rstrip("_")


class HospitalInputs(BaseModel):
    """A hospital as registered: the body of POST /api/hospitals/register (and of a
    sub-hospital's registration), and what the hospital targets get as inputs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    client_name: str = Field(min_length=1, max_length=255, examples=["City General Hospital"])
    client_uuid: UUID = Field(examples=["550e8400-e29b-41d4-a716-446655440000"])
    environment: str = Field(
        pattern=r"^(dev|test|staging|prod)$", examples=["prod"], description="dev, test, staging or prod."
    )
    region: Region

    @field_validator("client_name")
    @classmethod
    def _has_a_letter_or_digit(cls, value: str) -> str:
        if not any(ch.isalnum() for ch in value):
            raise ValueError("client_name must contain a letter or a digit")
        return value

    def to_tfvars(self, ctx: StackContext) -> dict[str, Any]:
        return {
            "client_uuid": str(self.client_uuid),
            "client_name": self.client_name,
            "database_name": database_name(self.client_name, self.client_uuid),
            "environment": self.environment,
            "region": self.region,
            "password_length": ctx.settings.password_length,
        }

    def sensitive_values(self) -> list[str]:
        return []


class SubHospitalInputs(HospitalInputs):
    """A sub-hospital finds its parent's outputs in the parent's state, located by the
    parent target's backend policy; the backend's secrets (a PostgreSQL URL) travel as a
    ``TF_VAR_`` in Terraform's environment, never in ``terraform.tfvars.json``.

    Which targets can be parents, and their backend policies, is the catalogue's to say:
    it binds them in a subclass (``parents``). This class alone accepts no parent."""

    parents: ClassVar[Mapping[str, BackendPolicy]] = MappingProxyType({})

    parent_uuid: UUID
    parent_target: str = Field(description="The parent's target, whose backend holds its state.")

    @field_validator("parent_target")
    @classmethod
    def _is_a_hospital_target(cls, value: str) -> str:
        if value not in cls.parents:
            raise ValueError(f"parent_target must be a hospital target ({', '.join(cls.parents)})")
        return value

    def parent_backend(self, settings: Settings) -> BackendConfig:
        return self.parents[self.parent_target](settings, str(self.parent_uuid))

    def to_tfvars(self, ctx: StackContext) -> dict[str, Any]:
        parent = self.parent_backend(ctx.settings)
        return {
            **super().to_tfvars(ctx),
            "parent_backend": parent.type,
            "parent_backend_config": {k: _hcl_string(v) for k, v in parent.config.items()},
        }

    def secret_variables(self, ctx: StackContext) -> dict[str, Any]:
        secrets = self.parent_backend(ctx.settings).secret_config
        return {"parent_backend_secrets": dict(secrets)} if secrets else {}


def _hcl_string(value: Any) -> str:
    """``map(string)`` values: booleans as Terraform spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class HospitalOutputs(BaseModel):
    """Shared by every hospital target. No password, no connection string: it names the
    secret that holds it."""

    sql_instance_id: str
    sql_instance_name: str
    sql_private_ip: str
    database_name: str
    database_user: str
    private_bucket: str
    public_bucket: str
    network_name: str
    connection_secret: str
