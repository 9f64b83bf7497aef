"""Run once while the image is built: writes the localcloud provider's filesystem mirror
into the data dir and proves the pinned Terraform installs the provider from it with no
network, so a broken image fails its build rather than its first run."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from flows.settings import get_settings
from flows.terraform.binary import find_binary
from flows.terraform.workspace import ensure_cli_config
from infrastructure.localcloud import PROVIDER_VERSION

PINNED = "1.0.3"


def main() -> None:
    root = get_settings().root
    cli_config = ensure_cli_config(root)
    binary = find_binary()
    if binary.version != PINNED:
        raise SystemExit(f"expected Terraform {PINNED}, found {binary}")
    with tempfile.TemporaryDirectory() as work:
        config = {
            "terraform": {
                "required_providers": {
                    "localcloud": {"source": "tenantform/localcloud", "version": PROVIDER_VERSION}
                }
            }
        }
        (Path(work) / "main.tf.json").write_text(json.dumps(config))
        env = {
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "PATH": "/usr/bin:/bin",
        }
        done = subprocess.run(
            [str(binary.path), f"-chdir={work}", "init", "-input=false", "-backend=false"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"terraform init from the mirror failed:\n{done.stdout}\n{done.stderr}")
    print(f"{binary}; localcloud {PROVIDER_VERSION} mirrored under {root / 'terraform'}")


if __name__ == "__main__":
    main()
