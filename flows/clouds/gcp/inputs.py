"""The GCP hospital targets' inputs: the hospital request plus the project (and whether
Cloud SQL is protected from deletion)."""

from __future__ import annotations

from typing import Any

from flows.clouds.base import StackContext
from flows.clouds.hospital import HospitalInputs, SubHospitalInputs


class GcpHospitalInputs(HospitalInputs):
    def to_tfvars(self, ctx: StackContext) -> dict[str, Any]:
        return {
            **super().to_tfvars(ctx),
            "project_id": ctx.settings.gcp_project_id,
            "deletion_protection": ctx.settings.deletion_protection,
        }


class GcpSubHospitalInputs(SubHospitalInputs):
    def to_tfvars(self, ctx: StackContext) -> dict[str, Any]:
        return {**super().to_tfvars(ctx), "project_id": ctx.settings.gcp_project_id}
