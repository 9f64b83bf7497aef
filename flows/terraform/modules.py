"""The Terraform modules the targets use, and the version of each: a content hash, so the
registry can say which module built a client's current state. The same hash names a module
revision (``flows.terraform.revisions``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from flows.settings import get_settings

MODULES = Path(__file__).resolve().parents[2] / "infrastructure" / "modules"
"""The project's own modules, the default of ``MODULES_DIR`` (runs read ``Settings.modules_root``)."""
REVISION_META = "revision.json"
"""A stored revision's own record, beside its module files (``flows.terraform.revisions``)."""


def module_files(directory: Path) -> list[Path]:
    """The files of a module a workspace copies: ``.tf`` and ``.json``, in name order (never a
    stored revision's own ``revision.json``)."""
    return [
        p
        for p in sorted(directory.iterdir())
        if p.is_file() and p.suffix in {".tf", ".json"} and p.name != REVISION_META
    ]


def tree_hash(directory: Path) -> str:
    """sha256 over the module's files (links followed), names and contents, in name order."""
    digest = hashlib.sha256()
    for path in module_files(directory):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def module_dir(module: str) -> Path:
    """The module's directory under ``MODULES_DIR``."""
    return get_settings().modules_root / module


def module_version(module: str) -> str:
    """The hash of the module as on disk now (read afresh: a module edit changes it)."""
    return tree_hash(module_dir(module))
