"""The work-pool templates (tests/pools/) in an environment with the pools group, which
the project's own environment leaves out: Prefect imports every installed collection when
a server or worker starts, and prefect-gcp and prefect-kubernetes cost seconds each."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_work_pool_templates_in_an_environment_with_the_pools_group() -> None:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the pools environment (the README's set-up installs it)"
    own = ("PREFECT_", "TENANTFORM_", "PYTEST_XDIST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env["TENANTFORM_POOLS_ENV"] = "1"
    done = subprocess.run(
        [
            uv,
            "run",
            "--frozen",
            "--isolated",
            "--group",
            "pools",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/pools",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-2000:]
