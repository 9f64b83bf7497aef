"""Redaction of values Terraform or the inputs mark sensitive."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"


class Redactor:
    """Replaces every known secret in a line; secrets shorter than 4 characters are ignored
    because masking them would mangle ordinary text without protecting anything."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        fresh = {s for s in secrets if isinstance(s, str) and len(s) >= 4}
        if fresh - self._secrets:
            self._secrets |= fresh
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


def sensitive_values(value: object) -> list[str]:
    """Every string leaf of a (possibly nested) sensitive value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in sensitive_values(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in sensitive_values(v)]
    return []
