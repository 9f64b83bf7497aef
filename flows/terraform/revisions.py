"""Module revisions: every module tree a target uses, kept as an immutable, content-addressed
copy. A client is pinned to one; any worker plans and applies it with that revision's exact
files, even after the module on disk has changed, so a module edit reaches a client only
through an upgrade. The gateway records revisions (``record``); workers only read them.

``<root>/<module>/<id>/``: the module's ``.tf``/``.json`` files (links followed) and
``revision.json``; ``id`` is ``modules.module_version``'s hash of those files."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from flows.settings import PROJECT_ROOT, Settings, get_settings
from flows.terraform.modules import REVISION_META as META
from flows.terraform.modules import module_files, tree_hash


class Revision(BaseModel):
    id: str
    module: str
    first_seen: datetime
    label: str = ""


class UnknownRevision(LookupError):
    """A revision the store does not hold for that module."""

    def __init__(self, module: str, revision_id: str) -> None:
        super().__init__(
            f"module {module!r} has no revision {revision_id!r}; "
            "list the known ones with GET /api/targets/{target}/revisions"
        )
        self.module, self.revision_id = module, revision_id


class RevisionStore:
    def __init__(self, root: Path, modules: Path) -> None:
        """``modules``: the modules on disk (``MODULES_DIR``) a revision is recorded from."""
        self.root, self.modules = root, modules

    def record(self, module: str, label: str = "", *, source: Path | None = None) -> Revision:
        """The revision of the module's files as they are now (``source``: another copy of the
        module, e.g. a checkout), copied into the store unless already there. Idempotent and
        safe under concurrent callers: the copy is written aside, then renamed into place."""
        directory = source if source is not None else self.modules / module
        if not directory.is_dir():
            raise FileNotFoundError(f"no Terraform module {module!r} at {directory}")
        revision_id = tree_hash(directory)
        final = self.root / module / revision_id
        if (final / META).is_file():
            return self.get(module, revision_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{revision_id}-", dir=final.parent))
        try:
            for item in module_files(directory):
                shutil.copyfile(item, staging / item.name)  # links followed
            if tree_hash(staging) != revision_id:
                raise RuntimeError(f"module {module!r} changed while its revision was recorded; record again")
            made = Revision(id=revision_id, module=module, first_seen=datetime.now(UTC), label=label)
            (staging / META).write_text(made.model_dump_json(indent=2))
            os.chmod(staging, 0o755)  # noqa: S103  (no secrets; every worker reads it)
            try:
                os.rename(staging, final)
            except OSError:
                if not (final / META).is_file():
                    raise
                # Another caller recorded it first: theirs stands.
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get(module, revision_id)

    def current(self, module: str) -> Revision:
        """The module as on disk now, recorded: the newest revision new clients are built with."""
        return self.record(module, default_label())

    def get(self, module: str, revision_id: str) -> Revision:
        meta = self._dir(module, revision_id) / META
        try:
            return Revision.model_validate_json(meta.read_text())
        except FileNotFoundError:
            raise UnknownRevision(module, revision_id) from None

    def files(self, module: str, revision_id: str) -> Path:
        """The revision's directory (its module files and ``revision.json``). A revision this
        store lacks whose hash is the module's on disk here is recorded from it: the hash is
        the content, so those are its exact files (a worker whose store the gateway does not
        share still runs what it was asked)."""
        try:
            self.get(module, revision_id)
        except UnknownRevision:
            if (self.modules / module).is_dir() and tree_hash(self.modules / module) == revision_id:
                self.record(module, default_label())
            else:
                raise
        return self._dir(module, revision_id)

    def list(self, module: str) -> list[Revision]:
        """Oldest first."""
        found = []
        for meta in (self.root / module).glob(f"*/{META}"):
            if not meta.parent.name.startswith("."):
                found.append(Revision.model_validate_json(meta.read_text()))
        return sorted(found, key=lambda r: (r.first_seen, r.id))

    def _dir(self, module: str, revision_id: str) -> Path:
        if not revision_id or "/" in revision_id or revision_id.startswith(".") or "/" in module:
            raise UnknownRevision(module, revision_id)
        return self.root / module / revision_id


def revision_store(settings: Settings) -> RevisionStore:
    return RevisionStore(settings.revisions_root, settings.modules_root)


@lru_cache
def default_label() -> str:
    """``MODULE_REVISION_LABEL``, else ``git describe --always --dirty`` of the project, else
    the package version: what a person reads next to a revision's hash."""
    if label := get_settings().module_revision_label:
        return label
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        if described:
            return described
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tenantform")
    except PackageNotFoundError:
        return ""
