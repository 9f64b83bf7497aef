"""The hospital request models, the database-name sanitiser, the target picker and what
reaches Terraform (tfvars, and secrets only through the environment). No Terraform here."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flows.clouds.base import StackContext
from flows.clouds.hospital import HospitalInputs, HospitalOutputs, database_name
from flows.jobs import Job
from flows.settings import Settings
from flows.targets import get_target, hospital_targets

GOOD: dict[str, Any] = {
    "client_name": "City General Hospital",
    "client_uuid": "550e8400-e29b-41d4-a716-446655440000",
    "environment": "prod",
    "region": "me-central2",
}


def failing_fields(model: type[Any], body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"client_uuid": "not-a-uuid"}, "client_uuid", "UUID"),
        ({"client_uuid": "550e8400-e29b-41d4-a716-44665544000"}, "client_uuid", "UUID"),
        ({"client_name": ""}, "client_name", "at least 1"),
        ({"client_name": "   "}, "client_name", "at least 1"),
        ({"client_name": "x" * 300}, "client_name", "at most 255"),
        ({"client_name": "!!!"}, "client_name", "letter or a digit"),
        ({"region": "Middle East"}, "region", "pattern"),
        ({"region": "me-central"}, "region", "pattern"),
        ({"region": "ME-CENTRAL2"}, "region", "pattern"),
        ({"environment": "production-ish"}, "environment", "pattern"),
        ({"surprise": 1}, "surprise", "not permitted"),
    ],
)
def test_bad_requests_name_the_field(change: dict[str, Any], field: str, says: str) -> None:
    errors = failing_fields(HospitalInputs, {**GOOD, **change})
    assert list(errors) == [field]
    assert says in errors[field]


def test_a_good_request_is_stripped_and_typed() -> None:
    request = HospitalInputs.model_validate({**GOOD, "client_name": "  City General Hospital  "})
    assert request.client_name == "City General Hospital"
    assert request.client_uuid == uuid.UUID(GOOD["client_uuid"])
    for region in ("us-central1", "europe-west4", "northamerica-northeast1"):
        HospitalInputs.model_validate({**GOOD, "region": region})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("City General Hospital", "city_general_hospital"),
        ("City General - Branch A", "city_general_branch_a"),
        ("St. Mary's (North)", "st_mary_s_north"),
        ("Hôpital Saint-Éloi", "hopital_saint_eloi"),
        ("123 Health", "db_123_health"),
        ("__Clinic__", "clinic"),
        ("A" * 100, "a" * 64),
        ("Ward " + "x" * 58 + " 9", "ward_" + "x" * 58),  # cut at 64, no trailing '_'
    ],
)
def test_database_name_is_sanitised(name: str, expected: str) -> None:
    result = database_name(name)
    assert result == expected
    assert len(result) <= 64 and result[0].isalpha()
    assert set(result) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


def test_a_name_with_nothing_in_ascii_is_told_apart_by_the_uuid() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    assert database_name("مستشفى الملك") == "db"
    assert database_name("مستشفى الملك", first) == "db_" + first.hex[:12]
    assert database_name("مستشفى الملك", first) != database_name("مستشفى الملك", second)


def test_gcp_when_a_project_is_configured_else_localcloud() -> None:
    assert hospital_targets(Settings(gcp_project_id=None)) == ("local-hospital", "local-sub-hospital")
    assert hospital_targets(Settings(gcp_project_id="medical-circles")) == (
        "gcp-hospital",
        "gcp-sub-hospital",
    )


def test_outputs_name_the_secret_and_hold_no_credentials() -> None:
    fields = set(HospitalOutputs.model_fields)
    assert "connection_secret" in fields
    assert not [f for f in fields if "password" in f or "connection_string" in f]
    for name in ("local-hospital", "local-sub-hospital", "gcp-hospital", "gcp-sub-hospital"):
        assert get_target(name).outputs is HospitalOutputs


def test_gcp_hospital_tfvars_and_state_layout() -> None:
    settings = Settings(gcp_project_id="medical-circles", deletion_protection=False, password_length=12)
    target = get_target("gcp-hospital")
    tfvars = target.parse_inputs(GOOD).to_tfvars(StackContext(GOOD["client_uuid"], "r", settings))
    assert tfvars["project_id"] == "medical-circles"
    assert tfvars["deletion_protection"] is False
    assert tfvars["password_length"] == 12
    assert tfvars["database_name"] == "city_general_hospital"
    backend = target.backend(settings, GOOD["client_uuid"])
    assert backend.type == "gcs"
    assert backend.config == {
        "bucket": "medical-circles-terraform-state-files",
        "prefix": GOOD["client_uuid"],
    }


def sub_body(parent_target: str = "local-hospital") -> dict[str, Any]:
    return {
        **GOOD,
        "client_uuid": "660e8400-e29b-41d4-a716-446655440001",
        "parent_uuid": GOOD["client_uuid"],
        "parent_target": parent_target,
    }


@pytest.mark.parametrize("target", ["local-sub-hospital", "gcp-sub-hospital"])
def test_the_parent_target_must_be_a_hospital(target: str) -> None:
    inputs = get_target(target).inputs
    for bad in ("local", "local-sub-hospital", "nope"):
        errors = failing_fields(inputs, sub_body(bad))
        assert list(errors) == ["parent_target"] and "hospital target" in errors["parent_target"]
    assert "parent_uuid" in failing_fields(inputs, {**sub_body(), "parent_uuid": "x"})
    for good in ("local-hospital", "gcp-hospital"):
        assert inputs.model_validate(sub_body(good))


def test_sub_hospital_finds_the_parent_state_through_its_backend_policy(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    tfvars = (
        get_target("local-sub-hospital").parse_inputs(sub_body()).to_tfvars(StackContext("c", "r", settings))
    )
    assert tfvars["parent_backend"] == "local"
    assert tfvars["parent_backend_config"] == {
        "path": str(tmp_path.resolve() / "state" / GOOD["client_uuid"] / "terraform.tfstate")
    }
    gcp = Settings(data_dir=tmp_path, gcp_project_id="p", state_bucket_name="states")
    tfvars = (
        get_target("gcp-sub-hospital")
        .parse_inputs(sub_body("gcp-hospital"))
        .to_tfvars(StackContext("c", "r", gcp))
    )
    assert (tfvars["parent_backend"], tfvars["parent_backend_config"]) == (
        "gcs",
        {"bucket": "states", "prefix": GOOD["client_uuid"]},
    )


def test_a_parent_state_url_reaches_terraform_only_through_its_environment(tmp_path: Path) -> None:
    conn_str = "postgres://tenantform:s3cr3t-pw@127.0.0.1:5432/states?sslmode=disable"
    settings = Settings(data_dir=tmp_path, state_backend="pg", state_pg_conn_str=conn_str)
    job = Job.create(settings, sub_body()["client_uuid"], "local-sub-hospital", sub_body())
    job.prepare()
    for path in job.workspace.path.iterdir():
        assert conn_str not in path.read_text(), path.name
    tfvars = json.loads((job.workspace.path / "terraform.tfvars.json").read_text())
    assert tfvars["parent_backend"] == "pg"
    assert tfvars["parent_backend_config"] == {"schema_name": "tf_" + GOOD["client_uuid"].replace("-", "_")}
    env = job.terraform().env
    assert json.loads(env["TF_VAR_parent_backend_secrets"]) == {"conn_str": conn_str}
    assert job.redactor(f"connecting to {conn_str}") == "connecting to ***"


def test_a_local_parent_needs_no_secret_variables(tmp_path: Path) -> None:
    job = Job.create(Settings(data_dir=tmp_path), "c", "local-sub-hospital", sub_body())
    assert not [k for k in job.terraform().env if k.startswith("TF_VAR_")]
