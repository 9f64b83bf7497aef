"""The create-tables flow: read the connection string from the secret the client's
outputs name, and apply the project's schema. Running it twice changes nothing."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from flows.contract import FlowParameters, Operation, RunResult, publish
from flows.jobs import Job
from flows.locks import client_lock, lock_options
from flows.provision import run_name
from flows.schema import apply_schema
from flows.settings import get_settings
from flows.tasks import TASK_OPTIONS, prepare_vars, retrying, terraform_init


@task(name="read-secret-reference", **TASK_OPTIONS)
def secret_reference(job: Job) -> str:
    """Where the connection string lives, from the client's outputs (not the value itself)."""
    if job.target.read_secret is None:
        raise ValueError(f"target {job.target.name} has no database secret")
    reference = job.terraform().output().get("connection_secret")
    if reference is None or not reference.value:
        raise ValueError(f"client {job.client_id} has no connection_secret output: is it provisioned?")
    return str(reference.value)


@task(name="apply-schema", **TASK_OPTIONS)
def apply_client_schema(job: Job, reference: str) -> list[str]:
    """The secret's value is read and used inside this task only: never a task parameter
    or result, never logged."""
    read_secret = job.target.read_secret
    if read_secret is None:
        raise ValueError(f"target {job.target.name} has no database secret")
    url = read_secret(reference, job.settings)
    job.redactor.add([url])
    applied = apply_schema(url)
    get_run_logger().info("schema versions applied now: %s", ", ".join(applied) or "none (up to date)")
    return applied


@flow(name="create-tables", flow_run_name=run_name, persist_result=True)
def create_tables(params: FlowParameters) -> dict[str, Any]:
    """Apply the hospital schema to the client's database."""
    settings = get_settings()
    client_id, target = params.client_id, params.target
    job = Job.create(
        settings, client_id, target, params.inputs, run_id=params.run_id, revision=params.revision
    )
    retry = retrying(settings)
    with client_lock(client_id, **lock_options(settings)) as job.previous_holder:
        prepare_vars.with_options(**retry)(job)
        terraform_init.with_options(**retry)(job)
        reference = secret_reference.with_options(**retry)(job)
        applied = apply_client_schema.with_options(**retry)(job, reference)
    result = RunResult(
        run_id=params.run_id,
        operation=Operation.create_tables,
        client_id=client_id,
        target=target,
        terraform=str(job.terraform().binary),
        outputs={"applied_versions": applied},
    )
    publish(result)
    return result.model_dump(mode="json")
