"""Redaction of values Terraform or the inputs mark sensitive."""

from __future__ import annotations

import json
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
        fresh = {form for s in secrets if isinstance(s, str) and len(s) >= 4 for form in _forms(s)}
        if fresh - self._secrets:
            self._secrets |= fresh
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


def _forms(secret: str) -> set[str]:
    """The secret as written, and as JSON escapes it: Terraform's ``-json`` lines (Go's
    encoder, which also escapes ``<``, ``>`` and ``&``) and Python's ``json.dumps``."""
    go = json.dumps(secret, ensure_ascii=False)[1:-1]
    go = go.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return {secret, go, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


def sensitive_values(value: object) -> list[str]:
    """Every string leaf of a (possibly nested) sensitive value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in sensitive_values(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in sensitive_values(v)]
    return []
