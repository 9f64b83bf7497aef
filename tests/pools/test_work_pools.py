"""The work-pool templates of deploy/pools/ (Docker, Kubernetes, Cloud Run v2), checked
against each worker's own base job template, created on a real Prefect server with the
README's `prefect work-pool create` command, and rendered for a real flow run of the
provision deployment through the worker's own code (``resolve_for_flow_run``: deployment
job variables, block references, ``prepare_for_flow_run``). No container is started: a
Docker engine, a cluster and Cloud Run are not what is under test here."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.contract import Operation
from tests.support import flow_params

POOLS = Path(__file__).resolve().parents[2] / "deploy" / "pools"
KINDS = {"docker": "docker", "kubernetes": "kubernetes", "cloud-run-v2": "cloud-run-v2"}
IMAGE = "tenantform:latest"
COMMAND = "python -m prefect.engine"
SECRET_NAMES = ("STATE_PG_CONN_STR", "API_KEY", "PREFECT_API_AUTH_STRING")
STATE_SECRET = "postgresql://tenantform:pool-test-s3cret@db.internal/tenantform"
KEY_SECRET = "pool-test-api-key-0123456789"


def worker_class(kind: str) -> Any:
    if kind == "docker":
        from prefect_docker.worker import DockerWorker

        return DockerWorker
    if kind == "kubernetes":
        from prefect_kubernetes.worker import KubernetesWorker

        return KubernetesWorker
    from prefect_gcp.workers.cloud_run_v2 import CloudRunWorkerV2

    return CloudRunWorkerV2


def template(kind: str) -> dict[str, Any]:
    return json.loads((POOLS / f"{kind}.json").read_text())


def _shape(prop: dict[str, Any]) -> dict[str, Any]:
    """A variable's schema without what a template may change (its default and words)."""
    return {k: v for k, v in prop.items() if k not in ("default", "description", "title", "examples")}


@pytest.mark.parametrize("kind", KINDS)
def test_template_keeps_the_workers_own_schema(kind: str) -> None:
    from prefect.utilities.schema_tools import validate

    worker = worker_class(kind)
    assert worker.type == KINDS[kind]
    ours, theirs = template(kind), worker.get_default_base_job_template()
    assert ours["job_configuration"].keys() == theirs["job_configuration"].keys()
    mine, default = ours["variables"]["properties"], theirs["variables"]["properties"]
    assert mine.keys() == default.keys()
    for name, prop in default.items():
        assert _shape(mine[name]) == _shape(prop), name
    defaults = {k: p["default"] for k, p in mine.items() if "default" in p}
    validate(defaults, ours["variables"], raise_on_error=True, preprocess=True, ignore_required=True)
    assert defaults["image"] == IMAGE
    assert defaults["command"] == COMMAND
    # Secrets are references (a block, a Kubernetes or Secret Manager secret), never values.
    for name in SECRET_NAMES:
        value = defaults["env"].get(name)
        assert value is None or value.startswith("{{ prefect.blocks.secret."), (name, value)


async def _create_pool(kind: str, name: str) -> None:
    """The README's command, as a person runs it (a real CLI process, a real server)."""
    cmd = f"prefect work-pool create {name} --type {KINDS[kind]} --base-job-template {POOLS / f'{kind}.json'}"
    done = await asyncio.to_thread(
        subprocess.run, shlex.split(cmd), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def _render(kind: str, job_variables: dict[str, Any]) -> tuple[Any, Any, str]:
    """A provision deployment in a pool of ``kind`` and a scheduled run of it (a day ahead:
    no worker polls this pool), resolved into the job the worker would start; and the
    command that job must run (prefect.yaml's, else the template's)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments.runner import EntrypointType
    from prefect.states import Scheduled
    from prefect.types._datetime import now

    from deployments.apply import load_flow
    from flows.workflows import workflow

    pool = f"tenantform-{kind}-{uuid.uuid4().hex[:6]}"
    await _create_pool(kind, pool)
    entry = workflow(Operation.provision)
    deployment = await load_flow(entry).ato_deployment(
        name=f"provision-{pool}",
        work_pool_name=pool,
        job_variables={**entry.job_variables, **job_variables},
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    deployment_id = await deployment.apply()  # type: ignore[misc]
    params = flow_params("pool-client", "local", {"instance_name_prefix": "pool", "count": 1})
    async with get_client() as client:
        run: FlowRun = await client.create_flow_run_from_deployment(
            deployment_id,
            parameters=params.as_prefect_parameters(),
            state=Scheduled(scheduled_time=now("UTC") + timedelta(days=1)),
        )
        work_pool = await client.read_work_pool(pool)
        config = await worker_class(kind).job_configuration.resolve_for_flow_run(
            run, client=client, work_pool=work_pool, worker_name="pool-test"
        )
        await client.delete_flow_run(run.id)
        await client.delete_deployment(deployment_id)
        await client.delete_work_pool(pool)
    _no_secret_in(params.as_prefect_parameters(), run.parameters, run.job_variables)
    return config, run, entry.job_variables.get("command", COMMAND)


# The README's snippet (Production, Docker pool): values from the environment, never argv.
SAVE_SECRET_BLOCKS = """import os; from prefect.blocks.system import Secret
Secret(value=os.environ["STATE_PG_CONN_STR"]).save("tenantform-state-pg-conn-str", overwrite=True)
Secret(value=os.environ["API_KEY"]).save("tenantform-api-key", overwrite=True)"""


@pytest.fixture(scope="module")
def secret_blocks(prefect_server: str) -> None:
    """What the Docker template names: Secret blocks on the Prefect server."""
    env = {**os.environ, "STATE_PG_CONN_STR": STATE_SECRET, "API_KEY": KEY_SECRET}
    done = subprocess.run(
        [sys.executable, "-c", SAVE_SECRET_BLOCKS], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr


def _no_secret_in(*things: Any) -> None:
    text = json.dumps(things, default=str)
    assert STATE_SECRET not in text and KEY_SECRET not in text


def test_docker_pool_renders_the_image_command_and_secrets_from_blocks(
    prefect_server: str, secret_blocks: None
) -> None:
    config, run, command = asyncio.run(_render("docker", {}))
    assert config.image == IMAGE
    assert config.image_pull_policy == "IfNotPresent"
    assert config.command == command
    env = config.env
    assert env["PREFECT__FLOW_RUN_ID"] == str(run.id)
    assert env["PREFECT_API_URL"] == prefect_server
    assert env["TENANTFORM_DATA_DIR"] == "/tmp/tenantform"
    assert env["STATE_BACKEND"] == "pg"
    # The worker resolves the block references when it starts the container: the values
    # live on the Prefect server, not in the template, the image or the run's parameters.
    assert env["STATE_PG_CONN_STR"] == STATE_SECRET
    assert env["API_KEY"] == KEY_SECRET
    _no_secret_in(template("docker"))
    assert config.mem_limit == "1g"
    assert config.container_create_kwargs == {"nano_cpus": 1_000_000_000}


def test_kubernetes_pool_renders_a_job_with_secret_refs_and_a_service_account(prefect_server: str) -> None:
    config, run, command = asyncio.run(_render("kubernetes", {"image": "registry.example/tenantform:1.2.3"}))
    manifest = config.job_manifest
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/tenantform:1.2.3"
    assert container["args"] == shlex.split(command)
    assert pod["serviceAccountName"] == "tenantform-runs"
    assert manifest["metadata"]["namespace"] == "tenantform"
    assert container["resources"] == {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "512Mi"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["PREFECT__FLOW_RUN_ID"]["value"] == str(run.id)
    assert env["TENANTFORM_DATA_DIR"]["value"] == "/tmp/tenantform"
    for name, key in (("STATE_PG_CONN_STR", "state-pg-conn-str"), ("API_KEY", "api-key")):
        assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": "tenantform", "key": key}}}
    assert container["securityContext"]["runAsNonRoot"] is True
    _no_secret_in(manifest)


def test_cloud_run_pool_renders_a_job_with_secret_manager_refs_and_its_identity(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_gcp_credentials import service_account_file

    # The worker finds its own credentials (to call the Cloud Run API) as on Cloud Run,
    # through application default credentials: here a generated key file stands in for the
    # metadata server. The job runs as its service account and is given no key.
    pem = service_account_file(tmp_path / "worker-sa.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "worker-sa.json"))
    identity = "tenantform-runs@hospital-project.iam.gserviceaccount.com"
    config, run, command = asyncio.run(
        _render(
            "cloud-run-v2",
            {"service_account_name": identity, "env": {"GCP_PROJECT_ID": "hospital-project"}},
        )
    )
    assert config.project == "hospital-project"
    assert pem not in json.dumps(config.job_body)
    job = config.job_body["template"]["template"]
    container = job["containers"][0]
    assert container["image"] == IMAGE
    assert [*container.get("command", []), *container.get("args", [])] == shlex.split(command)
    assert job["serviceAccount"] == identity
    assert job["timeout"] == "3600s"
    assert container["resources"] == {"limits": {"cpu": "1000m", "memory": "1Gi"}}
    assert config.region == "me-central2"
    env = {e["name"]: e for e in container["env"]}
    assert env["PREFECT__FLOW_RUN_ID"]["value"] == str(run.id)
    assert env["GCP_PROJECT_ID"]["value"] == "hospital-project"
    assert env["STATE_BACKEND"]["value"] == "pg"
    for name, secret in (
        ("STATE_PG_CONN_STR", "tenantform-state-pg-conn-str"),
        ("API_KEY", "tenantform-api-key"),
        ("PREFECT_API_AUTH_STRING", "tenantform-prefect-auth-string"),
    ):
        assert env[name] == {
            "name": name,
            "valueSource": {"secretKeyRef": {"secret": secret, "version": "latest"}},
        }
    _no_secret_in(config.job_body)
