"""The target catalogue: every kind of stack, declared once (``catalogue.py``), and the
ways to look one up. Adding a cloud is adding an entry to the catalogue, not an ``if``.

Targets are built from ``flows.clouds`` (inputs, pre-flight, read-back, secret readers)
and ``flows.terraform.backends``; nothing below imports this package."""

from __future__ import annotations

from flows.settings import Settings
from flows.targets.catalogue import TARGETS
from flows.targets.target import Credentials, CredentialsCheck, Preflight, Readback, SecretReader, Target

__all__ = [
    "Credentials",
    "CredentialsCheck",
    "Preflight",
    "Readback",
    "SecretReader",
    "Target",
    "UnknownTarget",
    "all_targets",
    "by_cloud_provider",
    "get_target",
    "hospital_targets",
]

_BY_NAME: dict[str, Target] = {t.name: t for t in TARGETS}


class UnknownTarget(KeyError):
    pass


def all_targets() -> dict[str, Target]:
    return dict(_BY_NAME)


def get_target(name: str) -> Target:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownTarget(f"unknown target {name!r}; known: {', '.join(_BY_NAME)}") from None


def by_cloud_provider() -> dict[str, Target]:
    """Targets that take the Airflow document's request, keyed by its ``cloud_provider``."""
    found: dict[str, Target] = {}
    for entry in _BY_NAME.values():
        field = entry.inputs.model_fields.get("cloud_provider")
        if field is not None:
            for value in getattr(field.annotation, "__args__", ()):
                found[value] = entry
    return found


def hospital_targets(settings: Settings) -> tuple[str, str]:
    """(hospital target, sub-hospital target): GCP when a project is configured, else the
    embedded default."""
    if settings.gcp_project_id:
        return "gcp-hospital", "gcp-sub-hospital"
    return "local-hospital", "local-sub-hospital"
