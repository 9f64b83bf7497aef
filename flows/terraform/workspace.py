"""A client's working directory and the environment every Terraform process gets.

The workspace is disposable: the truth is the state backend and the registry. Module
files are copied afresh on every run; ``terraform.tfvars.json`` and the logs are 0600.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from flows.terraform.backends import BackendConfig
from flows.terraform.modules import module_dir, module_files
from infrastructure.localcloud import PROVIDER_ADDRESS as LOCALCLOUD_SOURCE
from infrastructure.localcloud import PROVIDER_VERSION as LOCALCLOUD_VERSION

# Variables Terraform must never inherit from the caller's shell: ours are authoritative.
_SCRUBBED_PREFIXES = ("TF_",)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _write_if_changed(path: Path, text: str, mode: int) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)


def ensure_cli_config(root: Path) -> Path:
    """Write the filesystem mirror for ``localcloud`` and a CLI config pointing at it.

    The mirror entry is a two-line shell shim that execs this Python on the provider
    module, so its hash (recorded in each workspace's lock file) survives provider edits.
    """
    tf_dir = root / "terraform"
    platform_dir = tf_dir / "mirror" / LOCALCLOUD_SOURCE / LOCALCLOUD_VERSION / "linux_amd64"
    platform_dir.mkdir(parents=True, exist_ok=True)
    (tf_dir / "plugin-cache").mkdir(exist_ok=True)
    shim = platform_dir / f"terraform-provider-localcloud_v{LOCALCLOUD_VERSION}"
    _write_if_changed(shim, f'#!/bin/sh\nexec "{sys.executable}" -m infrastructure.localcloud "$@"\n', 0o755)
    cli = tf_dir / "cli.tfrc"
    mirror = json.dumps(str(tf_dir / "mirror"))
    _write_if_changed(
        cli,
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = {mirror}\n    include = ["{LOCALCLOUD_SOURCE}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{LOCALCLOUD_SOURCE}"]\n  }}\n'
        "}\n"
        f"plugin_cache_dir = {json.dumps(str(tf_dir / 'plugin-cache'))}\n",
        0o644,
    )
    return cli


class Workspace:
    """``<data_dir>/deployments/<client_id>``: module copy, variables, backend, logs."""

    def __init__(self, root: Path, client_id: str) -> None:
        self.root = root
        self.client_id = client_id
        self.path = root / "deployments" / client_id

    def log_path(self, name: str) -> Path:
        return self.path / f"{name}.log"

    def plan_path(self, run_id: str) -> Path:
        """A run's saved plan (it may hold secret values: the folder is 0700)."""
        plans = self.path / "plans"
        plans.mkdir(parents=True, exist_ok=True, mode=0o700)
        return plans / f"{run_id}.tfplan"

    def prepare(
        self, module: str, tfvars: dict[str, Any], backend: BackendConfig, source: Path | None = None
    ) -> None:
        """Module files from ``source`` (a stored revision's directory), else as on disk."""
        source = source if source is not None else module_dir(module)
        if not source.is_dir():
            raise FileNotFoundError(f"no Terraform module {module!r} at {source}")
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for old in self.path.glob("*.tf*"):
            if old.is_file() and old.name != ".terraform.lock.hcl":
                old.unlink()
        for item in module_files(source):
            shutil.copy2(item, self.path / item.name)
        _write_private(self.path / "terraform.tfvars.json", json.dumps(tfvars, indent=2))
        _write_private(self.path / "backend.tf.json", json.dumps(backend.as_json(), indent=2))

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(
            TF_CLI_CONFIG_FILE=str(ensure_cli_config(self.root)),
            TF_PLUGIN_CACHE_DIR=str(self.root / "terraform" / "plugin-cache"),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            LOCALCLOUD_DATA_DIR=str(self.root / "localcloud"),
        )
        env.update(extra or {})
        return env
