"""The provider object ``tf`` serves over Terraform's plugin protocol 6."""

from __future__ import annotations

from typing import Any

from tf import iface
from tf.schema import Schema
from tf.utils import Diagnostics

from infrastructure.localcloud import PROVIDER_ADDRESS
from infrastructure.localcloud.resources import RESOURCES


class LocalCloudProvider(iface.Provider):
    def get_model_prefix(self) -> str:
        return "localcloud_"

    def full_name(self) -> str:
        return PROVIDER_ADDRESS

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(version=1, attributes=[])

    def validate_config(self, diags: Diagnostics, config: dict[str, Any]) -> None:
        pass

    def configure_provider(self, diags: Diagnostics, config: dict[str, Any]) -> None:
        pass

    def get_data_sources(self) -> list[type[iface.DataSource]]:
        return []

    def get_resources(self) -> list[type[iface.Resource]]:
        return list(RESOURCES)
