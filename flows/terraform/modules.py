"""The Terraform modules the targets use, and the version of each: a content hash, so the
registry can say which module built a client's current state."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

MODULES = Path(__file__).resolve().parents[2] / "infrastructure" / "modules"


@lru_cache
def module_version(module: str) -> str:
    """sha256 over the module's files (links followed), names and contents, in name order."""
    digest = hashlib.sha256()
    for path in sorted((MODULES / module).iterdir()):
        if path.is_file() and path.suffix in {".tf", ".json"}:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
