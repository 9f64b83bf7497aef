"""The cloud modules checked against the real schemas of the provider versions they allow.

No provider can be downloaded here; the schemas come from the prebuilt CDK for Terraform
packages of the ``schemas`` dependency group (tests/provider_schemas.py) and from the
project's Terraform binary for its builtin provider. A misspelt attribute, a block the
provider does not have or a missing required argument fails here rather than on a real
account. The last test shows, on a temporary copy, that such errors are caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.terraform.binary import find_binary
from flows.terraform.modules import MODULES
from tests.provider_schemas import BUILTIN, Schemas
from tests.schema_check import allows, check_module

# Provider -> the version its schema package is built from (README: "what is checked how").
PROVIDER_VERSIONS = {"hashicorp/google": "6.50.0", "hashicorp/aws": "5.100.0", "hashicorp/random": "3.7.2"}
CHECKED_MODULES = {
    "gcp-hospital": {
        "google_sql_database_instance.mysql settings.ip_configuration.ipv4_enabled",
        "google_secret_manager_secret.connection replication.user_managed.replicas.location",
        "google_storage_bucket.private versioning.enabled",
        "random_password.db override_special",
        'provider "google" project',
        "output.sql_private_ip -> google_sql_database_instance.private_ip_address",
        "required_providers.google >= 5.0, < 7.0 admits hashicorp/google 6.50.0",
        "required_providers.random >= 3.5, < 4.0 admits hashicorp/random 3.7.2",
    },
    "gcp-sub-hospital": {
        "data.terraform_remote_state.parent backend",
        "locals -> terraform_remote_state.outputs",
        "google_sql_user.app password",
        "google_secret_manager_secret_version.connection -> random_password.result",
    },
    "aws-ec2": {
        "aws_instance.this vpc_security_group_ids",
        "aws_instance.this lifecycle.ignore_changes tags",
        'provider "aws" default_tags.tags',
        "output.instances -> aws_instance.public_ip",
        "required_providers.aws >= 4.0, < 6.0 admits hashicorp/aws 5.100.0",
    },
}


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    return Schemas(find_binary(None).path)


def test_schema_packages_are_built_from_the_named_provider_versions(schemas: Schemas) -> None:
    for source, version in PROVIDER_VERSIONS.items():
        schema = schemas.get(source)
        assert (schema.source, schema.version) == (source, version), schema.origin
    builtin = schemas.get(BUILTIN)
    assert builtin.data_sources["terraform_remote_state"].arguments["backend"] is True


@pytest.mark.parametrize("module", sorted(CHECKED_MODULES))
def test_module_matches_its_provider_schemas(module: str, schemas: Schemas) -> None:
    report = check_module(MODULES / module, schemas)
    assert not report.problems, "\n".join(report.problems)
    missing = CHECKED_MODULES[module] - report.checked
    assert not missing, f"{module}: not checked: {sorted(missing)}"


def test_version_constraints_follow_terraform() -> None:
    assert allows(">= 5.0, < 7.0", "6.50.0") and not allows(">= 5.0, < 7.0", "7.0.0")
    assert allows("~> 5.1", "5.100.0") and not allows("~> 5.1", "6.0.0")
    assert allows("~> 5.1.0", "5.1.9") and not allows("~> 5.1.0", "5.2.0")
    assert allows("6.50.0", "6.50.0") and not allows("!= 6.50.0", "6.50.0")


# (module, file, text in the file, replacement, fragments the report must hold)
BROKEN = {
    "misspelt nested attribute": (
        "gcp-hospital", "main.tf", "ipv4_enabled    = false", "ipv4_enable     = false",
        ["gcp-hospital/main.tf:", "google_sql_database_instance.mysql",
         "settings.ip_configuration.ipv4_enable is not an argument in hashicorp/google 6.50.0",
         "did you mean ipv4_enabled?"],
    ),
    "missing required argument in a block": (
        "gcp-hospital", "main.tf", "    tier        = var.sql_tier\n", "",
        ["google_sql_database_instance.mysql", "required argument settings.tier is not set"],
    ),
    "missing required argument": (
        "gcp-sub-hospital", "main.tf",
        '  instance = local.parent.sql_instance_id\n}\n\nresource "google_sql_user"',
        '}\n\nresource "google_sql_user"',
        ["gcp-sub-hospital/main.tf:", "google_sql_database.main", "required argument instance is not set"],
    ),
    "missing required block": (
        "gcp-sub-hospital", "main.tf",
        "  replication {\n    user_managed {\n      replicas {\n        location = var.region\n"
        "      }\n    }\n  }\n", "",
        ["google_secret_manager_secret.connection", "required block replication is missing"],
    ),
    "misspelt argument": (
        "aws-ec2", "main.tf", "vpc_security_group_ids = var", "vpc_security_groups_ids = var",
        ["aws-ec2/main.tf:", "aws_instance.this",
         "vpc_security_groups_ids is not an argument in hashicorp/aws 5.100.0"],
    ),
    "unknown resource type": (
        "gcp-hospital", "main.tf", '"google_storage_bucket_iam_member"', '"google_storage_bucket_iam_membr"',
        ["google_storage_bucket_iam_membr.public_read",
         "has no resource type google_storage_bucket_iam_membr"],
    ),
    "block written as an argument": (
        "gcp-hospital", "main.tf", "  versioning {\n    enabled = true\n  }",
        "  versioning = {\n    enabled = true\n  }",
        ["google_storage_bucket.private", "versioning is a nested block"],
    ),
    "computed attribute set": (
        "gcp-hospital", "main.tf", '  database_version    = "MYSQL_8_0"\n',
        '  database_version    = "MYSQL_8_0"\n  connection_name     = "p:r:i"\n',
        ["google_sql_database_instance.mysql", "connection_name is computed by hashicorp/google"],
    ),
    "unknown attribute read": (
        "gcp-hospital", "outputs.tf", "mysql.private_ip_address", "mysql.private_ip_addres",
        ["gcp-hospital/outputs.tf:", "output.sql_private_ip",
         "google_sql_database_instance has no attribute private_ip_addres"],
    ),
    "undeclared resource referenced": (
        "gcp-hospital", "main.tf", "[google_service_networking_connection.peering]",
        "[google_service_networking_connection.peer]",
        ["google_service_networking_connection.peer refers to no resource declared"],
    ),
    "misspelt provider block": (
        "aws-ec2", "versions.tf", "default_tags {", "default_tag {",
        ["aws-ec2/versions.tf:", 'provider "aws"', "default_tag is not a block",
         "did you mean default_tags?"],
    ),
    "ignore_changes of no argument": (
        "aws-ec2", "main.tf", 'tags["request_id"]]', 'tag["request_id"]]',
        ["aws_instance.this", "ignore_changes names tag, not an argument"],
    ),
    "constraint that excludes the schema": (
        "aws-ec2", "versions.tf", '">= 4.0, < 6.0"', '">= 6.0, < 7.0"',
        ["required_providers.aws", "'>= 6.0, < 7.0' does not allow hashicorp/aws 5.100.0"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_copies_are_caught_with_module_resource_and_attribute(
    case: str, schemas: Schemas, tmp_path: Path
) -> None:
    module, file, old, new, fragments = BROKEN[case]
    copy = tmp_path / module
    shutil.copytree(MODULES / module, copy)  # linked files become plain copies
    text = (copy / file).read_text()
    assert text.count(old) == 1, f"{module}/{file} no longer holds {old!r} once: update this case"
    (copy / file).write_text(text.replace(old, new))
    problems = check_module(copy, schemas).problems
    matching = [p for p in problems if all(f in p for f in fragments)]
    assert matching, f"{case}: no problem holds {fragments}; got {problems}"
