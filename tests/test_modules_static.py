"""Every Terraform module, checked without providers (none can be downloaded here):
`terraform fmt -check`, every variable typed, described and used, outputs equal to the
target's output model, and every tfvars key a target produces declared."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from flows.clouds import instances
from flows.clouds.base import StackContext
from flows.settings import Settings
from flows.targets import all_targets, by_cloud_provider
from flows.terraform.backends import BackendConfig
from flows.terraform.binary import find_binary
from flows.terraform.modules import MODULES
from flows.terraform.workspace import Workspace
from infrastructure import localcloud

MODULE_DIRS = sorted(p for p in MODULES.iterdir() if p.is_dir())
SHARED = MODULES.parent / "shared"  # files the modules link to
EXAMPLES: dict[str, dict[str, Any]] = {name: dict(t.example) for name, t in all_targets().items()}
"""Each target's own example (the catalogue's): a target without one fails below."""
INSTANCE_MODULES = tuple(sorted({t.module for t in by_cloud_provider().values()}))
"""The targets taking the Airflow document's request (a ``cloud_provider`` field)."""
LOCALCLOUD_MODULES = {t.module for t in all_targets().values() if t.credentials is None}
"""The targets needing no cloud account: built on the embedded localcloud."""


def load(module: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {"variable": {}, "output": {}}
    for tf in module.glob("*.tf"):
        with tf.open() as fh:
            parsed = hcl2.load(fh)
        for kind in ("variable", "output"):
            for block in parsed.get(kind, []):  # this python-hcl2 keeps the labels' quotes
                merged[kind].update({name.strip('"'): spec for name, spec in block.items()})
    return merged


def source(module: Path) -> str:
    return "\n".join(p.read_text() for p in module.glob("*.tf"))


@pytest.mark.parametrize("module", [*MODULE_DIRS, SHARED], ids=lambda p: p.name)
def test_fmt_clean(module: Path) -> None:
    result = subprocess.run(
        [str(find_binary(None).path), "fmt", "-check", "-diff", str(module)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("module", MODULE_DIRS, ids=lambda p: p.name)
def test_variables_typed_described_used(module: Path) -> None:
    variables = load(module)["variable"]
    assert variables, f"{module.name} declares no variables"
    text = source(module)
    for name, spec in variables.items():
        assert "type" in spec, f"{module.name}: variable {name} has no type"
        assert str(spec.get("description", "")).strip('"'), (
            f"{module.name}: variable {name} has no description"
        )
        assert re.search(rf"\bvar\.{name}\b", text), f"{module.name}: variable {name} is never used"


@pytest.mark.parametrize("target", sorted(all_targets()), ids=str)
def test_outputs_match_model_and_tfvars_are_declared(target: str) -> None:
    entry = all_targets()[target]
    declared = load(MODULES / entry.module)
    assert set(declared["output"]) == set(entry.outputs.model_fields), target
    assert EXAMPLES[target], f"{target} has no example in the catalogue"
    tfvars = entry.parse_inputs(EXAMPLES[target]).to_tfvars(
        StackContext("c", "r", Settings(gcp_project_id="p"))
    )
    assert set(tfvars) <= set(declared["variable"]), set(tfvars) - set(declared["variable"])
    required = {n for n, spec in declared["variable"].items() if "default" not in spec}
    assert required <= set(tfvars), f"{target}: no value for {required - set(tfvars)}"


def test_hospital_targets_share_one_output_contract() -> None:
    targets = all_targets()
    outputs = {
        name: set(load(MODULES / t.module)["output"]) for name, t in targets.items() if "hospital" in name
    }
    assert len(set(map(frozenset, outputs.values()))) == 1, outputs
    assert all("password" not in o and "connection_string" not in o for o in next(iter(outputs.values())))


def test_gcp_hospital_keeps_sql_private_and_labels_everything() -> None:
    text = source(MODULES / "gcp-hospital")
    assert "ipv4_enabled    = false" in text
    assert 'database_version    = "MYSQL_8_0"' in text
    assert "google_service_networking_connection" in text and "google_compute_firewall" in text
    for label in ("client_uuid", "environment", "managed-by"):
        assert label in text
    assert "deletion_protection = var.deletion_protection" in text


def test_shared_files_are_links_that_resolve() -> None:
    """A module links a shared file; the engine's workspace copy must get its content."""
    links = [p for module in MODULE_DIRS for p in module.glob("*.tf") if p.is_symlink()]
    assert links, "the hospital and instance modules link files of infrastructure/shared"
    for link in links:
        assert link.resolve().parent == SHARED, link
        assert link.resolve().is_file(), link


@pytest.mark.parametrize("module", [*INSTANCE_MODULES], ids=str)
def test_instance_modules_link_the_shared_instance_variables(module: str) -> None:
    link = MODULES / module / "instance_variables.tf"
    assert link.is_symlink() and link.resolve() == SHARED / "instance_variables.tf"


def test_instance_rules_are_the_python_request_rules() -> None:
    """The name prefix pattern and the count bounds: Terraform's copy in the shared file
    equals the Python constants the request models validate with."""
    variables = load(SHARED)["variable"]
    prefix = variables["instance_name_prefix"]["validation"][0]
    pattern = re.search(r'regex\("((?:[^"\\]|\\.)*)", var\.instance_name_prefix\)', prefix["condition"])
    assert pattern is not None, prefix["condition"]
    assert pattern.group(1).replace("\\\\", "\\") == instances.NAME_PREFIX_PATTERN
    assert f"at most {instances.NAME_PREFIX_MAX_LENGTH} characters" in prefix["error_message"]
    longest = "a" * instances.NAME_PREFIX_MAX_LENGTH
    assert re.match(instances.NAME_PREFIX_PATTERN, longest)
    assert not re.match(instances.NAME_PREFIX_PATTERN, longest + "a")
    count = variables["instance_count"]["validation"][0]
    bounds = re.search(r"var\.instance_count >= (\d+) && var\.instance_count <= (\d+)", count["condition"])
    assert bounds is not None, count["condition"]
    assert (int(bounds.group(1)), int(bounds.group(2))) == (instances.MIN_COUNT, instances.MAX_COUNT)
    assert f"between {instances.MIN_COUNT} and {instances.MAX_COUNT}" in count["error_message"]


def test_localcloud_modules_require_the_provider_the_engine_serves() -> None:
    required = {}
    for module in MODULE_DIRS:
        with (module / "versions.tf").open() as fh:
            terraform = hcl2.load(fh)["terraform"][0]
        for providers in terraform.get("required_providers", []):
            if "localcloud" in providers:
                required[module.name] = {k: v.strip('"') for k, v in providers["localcloud"].items()}
    assert set(required) == LOCALCLOUD_MODULES
    for module, spec in required.items():
        assert f"registry.terraform.io/{spec['source']}" == localcloud.PROVIDER_ADDRESS, module
        assert spec["version"] == localcloud.PROVIDER_VERSION, module


def test_the_workspace_copies_linked_files_as_content(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path, "c")
    for module in (*INSTANCE_MODULES, all_targets()["local-hospital"].module):
        workspace.prepare(module, {}, BackendConfig(type="local"))
        for link in (MODULES / module).glob("*.tf"):
            if link.is_symlink():
                copy = workspace.path / link.name
                assert not copy.is_symlink() and copy.read_text() == link.resolve().read_text()
