"""JSON Merge Patch (RFC 7396): how PATCH /api/clients/{client_id} changes a client's inputs."""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """An object patch merges key by key (``null`` removes a key); anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def value_at(document: Any, path: str) -> Any:
    """The value at a dotted path (``provider_config.region``), or None."""
    for part in path.split("."):
        if not isinstance(document, dict):
            return None
        document = document.get(part)
    return document
