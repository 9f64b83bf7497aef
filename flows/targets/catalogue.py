"""The entries of the catalogue (see ``flows.targets``)."""

from __future__ import annotations

from flows.targets import Target
from flows.targets.instances import InstancesOutputs, LocalRequest
from flows.terraform.backends import local_or_pg_backend

TARGETS: tuple[Target, ...] = (
    Target(
        name="local",
        module="local",
        inputs=LocalRequest,
        outputs=InstancesOutputs,
        backend=local_or_pg_backend,
        description="Instances on localcloud, the embedded default: no cloud account needed.",
    ),
)
