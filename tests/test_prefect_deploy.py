"""`prefect deploy --all` from the project directory (Prefect's own CLI, no launcher)
applies the same deployments as `tenantform deploy`: module entrypoints, nothing to pull."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from deployments.apply import ensure_work_pool
from flows.workflows import PROJECT_ROOT, work_pool_name, workflows


def test_prefect_deploy_all_applies_the_catalogue(prefect_server: str) -> None:
    asyncio.run(ensure_work_pool(work_pool_name()))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--all"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PREFECT_API_URL": prefect_server},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for entry in workflows().values():
            deployment = client.read_deployment_by_name(entry.deployment_name)
            assert deployment.entrypoint == entry.entrypoint
            assert not deployment.pull_steps, "a run must not depend on a directory set by nobody"
            assert deployment.work_pool_name == entry.work_pool
            assert deployment.job_variables == entry.job_variables
