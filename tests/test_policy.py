"""Policies on plans (issue 24): the built-ins on real localcloud plans (Terraform 1.0.3)
and on a saved plan JSON of the gcp-hospital module; the three enforcement levels, an
override, a plan run's report and a broken policy on provision flows run in-process
against the session's Prefect server."""

from __future__ import annotations

import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from flows.contract import PolicyOverride
from flows.policy import BUILTIN_DIR, PolicyDenied, PolicyError, PolicySet, plan_document
from flows.terraform.binary import find_binary
from flows.terraform.modules import MODULES
from flows.terraform.runner import Terraform
from flows.terraform.workspace import Workspace
from tests.support import flow_params

DATA = Path(__file__).parent / "data"
GCP_PLAN = json.loads((DATA / "plan_gcp_hospital.json").read_text())
HOSPITAL = "550e8400-e29b-41d4-a716-446655440000"


def verdicts(policies: PolicySet, plan: dict[str, Any], **client: Any) -> dict[str, tuple[str, list[str]]]:
    document = plan_document(
        plan,
        client_id=client.get("client_id", HOSPITAL),
        target=client.get("target", "gcp-hospital"),
        inputs=client.get("inputs", {"region": "me-central2"}),
        labels={},
        operation=client.get("operation", "provision"),
    )
    return {r.policy: (r.outcome.value, r.messages) for r in policies.evaluate(document)}


def blocked(found: dict[str, tuple[str, list[str]]]) -> dict[str, list[str]]:
    return {name: messages for name, (outcome, messages) in found.items() if outcome != "pass"}


def with_data(tmp_path: Path, params: dict[str, Any]) -> PolicySet:
    own = tmp_path / "own"
    own.mkdir(exist_ok=True)
    (own / "data.json").write_text(json.dumps({"tenantform": {"params": params}}))
    return PolicySet.load([BUILTIN_DIR, own])


def _change(plan: dict[str, Any], address: str) -> dict[str, Any]:
    (found,) = [r for r in plan["resource_changes"] if r["address"] == address]
    after: dict[str, Any] = found["change"]["after"]
    return after


# --- built-ins: GCP ones on the gcp-hospital module's saved plan JSON ----------------------


def test_the_gcp_plan_fixture_has_the_modules_attributes() -> None:
    main = (MODULES / "gcp-hospital" / "main.tf").read_text()
    lines = (
        "ipv4_enabled    = false",
        "deletion_protection = var.deletion_protection",
        "enabled            = true",
    )
    for line in lines:
        assert line in main, line
    assert main.count("uniform_bucket_level_access = true") == 2 and 'member = "allUsers"' in main


def test_gcp_builtins_keep_the_hospital_plan_and_deny_each_break(tmp_path: Path) -> None:
    builtins = PolicySet.load([BUILTIN_DIR])
    assert blocked(verdicts(builtins, GCP_PLAN)) == {}, "the module as written passes every built-in"

    def broken(address: str, change: Any) -> dict[str, list[str]]:
        plan = copy.deepcopy(GCP_PLAN)
        change(_change(plan, address))
        return blocked(verdicts(builtins, plan))

    sql = "google_sql_database_instance.mysql"
    public_ip = broken(sql, lambda a: a["settings"][0]["ip_configuration"][0].update(ipv4_enabled=True))
    assert list(public_ip) == ["tenantform.cloudsql_no_public_ip"]
    assert public_ip["tenantform.cloudsql_no_public_ip"][0].startswith(f"{sql} would have a public IP")
    unprotected = broken(sql, lambda a: a.update(deletion_protection=False))
    assert unprotected == {"tenantform.cloudsql_protected": [f"{sql} must have deletion_protection = true"]}
    no_backup = broken(sql, lambda a: a["settings"][0]["backup_configuration"][0].update(enabled=False))
    assert no_backup == {
        "tenantform.cloudsql_protected": [f"{sql} must have settings.backup_configuration.enabled = true"]
    }
    acl = broken("google_storage_bucket.private", lambda a: a.update(uniform_bucket_level_access=False))
    assert acl == {
        "tenantform.bucket_access": [
            "google_storage_bucket.private must have uniform_bucket_level_access = true"
        ]
    }
    member = "google_storage_bucket_iam_member.public_read"
    leaked = broken(member, lambda a: a.update(bucket=f"{HOSPITAL}-private"))
    assert leaked == {
        "tenantform.bucket_access": [f'{member} makes bucket "{HOSPITAL}-private" readable by allUsers']
    }

    elsewhere = with_data(tmp_path, {"allowed_regions": {"gcp-hospital": ["europe-west1"]}})
    assert blocked(verdicts(elsewhere, GCP_PLAN)) == {
        "tenantform.allowed_regions": [
            "region me-central2 is not allowed for target gcp-hospital (allowed: europe-west1)"
        ]
    }
    here = with_data(tmp_path, {"allowed_regions": {"gcp-hospital": ["europe-west1", "ME-CENTRAL2"]}})
    assert blocked(verdicts(here, GCP_PLAN)) == {}


# --- built-ins: the localcloud ones on real plans --------------------------------------------

MODULE = """
terraform {
  required_providers {
    localcloud = { source = "tenantform/localcloud", version = "0.1.0" }
  }
}
variable "n" { type = number }
variable "tags" { type = map(string) }
variable "bucket" { type = string }
variable "database" { type = string }
resource "localcloud_instance" "this" {
  count = var.n
  name  = "pol-${count.index}"
  size  = "small"
  tags  = var.tags
}
resource "localcloud_bucket" "b" {
  name          = var.bucket
  public        = true
  force_destroy = true
}
resource "localcloud_sql_instance" "db" {
  name             = "sql-policy"
  database_version = "MYSQL_8_0"
}
resource "localcloud_sql_database" "main" {
  instance_id = localcloud_sql_instance.db.id
  name        = var.database
}
"""


def test_localcloud_builtins_on_real_plans(settings: Any, tmp_path: Path) -> None:
    client = f"pol-{uuid.uuid4().hex[:8]}"
    workspace = Workspace(settings.root, client)
    workspace.path.mkdir(parents=True)
    (workspace.path / "main.tf").write_text(MODULE)
    terraform = Terraform(find_binary(None), workspace, workspace.environment())
    terraform.init()
    kept = {"n": 2, "tags": {"client": client}, "bucket": f"{client}-public", "database": "main"}

    def plan(variables: dict[str, Any]) -> dict[str, Any]:
        (workspace.path / "terraform.tfvars.json").write_text(json.dumps(variables))
        plan_file = workspace.plan_path(uuid.uuid4().hex)
        terraform.plan(out=plan_file)
        return terraform.show_json(plan_file)

    (workspace.path / "terraform.tfvars.json").write_text(json.dumps(kept))
    terraform.apply()
    policies = with_data(tmp_path, {"max_instances_per_client": 2})
    local = {"client_id": client, "target": "local", "inputs": {}}
    assert blocked(verdicts(policies, plan(kept), **local)) == {}

    broken = plan({"n": 3, "tags": {"client": "other"}, "bucket": f"{client}-open", "database": "other"})
    found = blocked(verdicts(policies, broken, **local))
    assert found.pop("tenantform.instance_cap") == [
        "the plan leaves 3 instances, more than the cap of 2 per client"
    ]
    assert found.pop("tenantform.instance_client_tag") == [
        f'localcloud_instance.this[{i}] is not tagged client_id = "{client}"' for i in range(3)
    ]
    bucket = f'localcloud_bucket.b makes bucket "{client}-open" public'
    assert found.pop("tenantform.bucket_access") == [bucket]
    assert found.pop("tenantform.no_database_delete") == [
        "localcloud_sql_database.main would be deleted (delete, create) outside a destroy run"
    ]
    assert found == {}
    as_destroy = blocked(verdicts(policies, broken, **{**local, "operation": "destroy"}))
    assert "tenantform.no_database_delete" not in as_destroy


# --- levels, override, plan report, broken policy: provision flows ------------------------

LEVELS = {
    "advisory": "adv",
    "soft-mandatory": "soft",
    "hard-mandatory": "hard",
}


def write_levels(directory: Path) -> None:
    for level, prefix in LEVELS.items():
        (directory / f"{prefix}.rego").write_text(
            f"package ops.{prefix}\n\nimport rego.v1\n\nenforcement := {json.dumps(level)}\n\n"
            "deny contains msg if {\n"
            f'\tstartswith(input.client.inputs.instance_name_prefix, "{prefix}")\n'
            f'\tmsg := sprintf("no {prefix}* instances (%s run)", [input.operation])\n'
            "}\n"
        )


@pytest.fixture
def policy_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Path:
    from flows.settings import get_settings

    directory = tmp_path / "policies"
    directory.mkdir()
    write_levels(directory)
    monkeypatch.setenv("POLICY_DIR", str(directory))
    get_settings.cache_clear()
    return directory


def run(flow_name: str, client_id: str, prefix: str, override: PolicyOverride | None = None) -> Any:
    from flows import provision as flows

    inputs = {"cloud_provider": "local", "instance_name_prefix": prefix, "count": 1}
    params = flow_params(client_id, "local", inputs)
    params.policy_override = override
    return getattr(flows, flow_name)(params=params, return_state=True)


def instances_of(settings: Any, client_id: str) -> list[str]:
    found = [json.loads(p.read_text()) for p in (settings.root / "localcloud" / "instances").glob("*.json")]
    return sorted(i["name"] for i in found if i["tags"].get("client") == client_id)


def outcome(result: dict[str, Any], policy: str) -> tuple[str, list[str]]:
    (found,) = [p for p in result["policies"] if p["policy"] == policy]
    return found["outcome"], found["messages"]


@pytest.mark.usefixtures("prefect_server")
def test_levels_override_plan_report_and_a_broken_policy(settings: Any, policy_dir: Path) -> None:
    cid = str(uuid.uuid4())
    warned = run("provision", cid, "adv")
    assert warned.is_completed(), warned.message
    assert outcome(warned.result(), "ops.adv") == ("warn", ["no adv* instances (provision run)"])
    assert outcome(warned.result(), "tenantform.instance_client_tag") == ("pass", [])
    assert instances_of(settings, cid) == ["adv-1"]
    state_file = settings.root / "state" / cid / "terraform.tfstate"
    state = state_file.read_bytes()

    denied = run("provision", cid, "soft")
    assert denied.is_failed()
    assert "denied by policy ops.soft (soft-mandatory): no soft* instances" in str(denied.message)
    with pytest.raises(PolicyDenied) as info:
        denied.result()
    assert [(r.policy, r.outcome.value) for r in info.value.results if r.outcome.value != "pass"] == [
        ("ops.soft", "deny")
    ]
    assert instances_of(settings, cid) == ["adv-1"] and state_file.read_bytes() == state, "nothing applied"

    reported = run("plan", cid, "soft")
    assert reported.is_completed(), reported.message
    assert outcome(reported.result(), "ops.soft")[0] == "deny"
    assert "applying it would be refused" in reported.result()["message"]
    assert instances_of(settings, cid) == ["adv-1"] and state_file.read_bytes() == state

    override = PolicyOverride(by="key:t", reason="migration", policies=["ops.soft"], overrides_run="r1")
    lifted = run("provision", cid, "soft", override)
    assert lifted.is_completed(), lifted.message
    assert outcome(lifted.result(), "ops.soft") == ("overridden", ["no soft* instances (provision run)"])
    assert instances_of(settings, cid) == ["soft-1"]

    hard = run("provision", cid, "hard", override.model_copy(update={"policies": ["ops.hard"]}))
    assert hard.is_failed() and "denied by policy ops.hard (hard-mandatory)" in str(hard.message)
    assert instances_of(settings, cid) == ["soft-1"]

    (policy_dir / "broken.rego").write_text("package ops.broken\nimport rego.v1\ndeny contains msg if {\n")
    broken = run("provision", cid, "soft-again", override)
    assert broken.is_failed()
    with pytest.raises(PolicyError, match=r"broken\.rego:\d+:\d+: "):
        broken.result()
    assert instances_of(settings, cid) == ["soft-1"], "a broken policy fails closed"


def test_a_rule_that_errors_fails_closed_naming_its_line(tmp_path: Path) -> None:
    (tmp_path / "odd.rego").write_text(
        'package ops.odd\n\nimport rego.v1\n\ndeny contains msg if {\n\tmsg := to_number("x")\n}\n'
    )
    with pytest.raises(PolicyError, match=r"odd\.rego:6:\d+: .*"):
        PolicySet.load([tmp_path]).evaluate({"plan": {}})
    with pytest.raises(PolicyError, match="does not exist"):
        PolicySet.load([tmp_path / "missing"])


# --- through the gateway and the session's worker --------------------------------------------

GATE = """package gate.{name}

import rego.v1

enforcement := "{level}"

deny contains msg if {{
\tstartswith(input.client.inputs.instance_name_prefix, "{name}")
\tmsg := "no {name}* instances"
}}
"""


@pytest.mark.usefixtures("worker")
def test_denial_override_and_a_broken_policy_through_the_gateway(gateway: Any) -> None:
    from tests.conftest import POLICY_DIR
    from tests.test_day_two import request, wait_run

    def provision(prefix: str) -> dict[str, Any]:
        accepted = gateway.post("/provision", json=request(prefix)).json()
        return wait_run(gateway, accepted["request_id"])

    def key(scope: str) -> dict[str, str]:
        made = gateway.post("/api/keys", json={"name": f"k-{scope}", "scope": scope})
        assert made.status_code == 201, made.text
        return {"X-API-Key": made.json()["key"]}

    def instances(client_id: str) -> list[str]:
        data = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud" / "instances"
        found = [json.loads(p.read_text()) for p in data.glob("*.json")]
        return [i["name"] for i in found if i["tags"].get("client") == client_id]

    # Written while the stack runs: the next run reads them.
    written = [POLICY_DIR / "soft.rego", POLICY_DIR / "hard.rego"]
    written[0].write_text(GATE.format(name="gsoft", level="soft-mandatory"))
    written[1].write_text(GATE.format(name="ghard", level="hard-mandatory"))
    try:
        denied = provision("gsoft")
        assert denied["status"] == "failed", denied
        assert "denied by policy gate.gsoft (soft-mandatory): no gsoft* instances" in denied["message"]
        verdicts = {p["policy"]: (p["outcome"], p["messages"]) for p in denied["policies"]}
        assert verdicts["gate.gsoft"] == ("deny", ["no gsoft* instances"])
        assert verdicts["tenantform.instance_client_tag"] == ("pass", [])
        status = gateway.get(f"/status/{denied['request_id']}").json()
        assert "gate.gsoft" in status["message"], status
        assert instances(denied["client_uuid"]) == [], "a denied run applies nothing"

        override = f"/api/runs/{denied['request_id']}/override"
        body = {"reason": "approved exception, ticket 42"}
        refused = gateway.post(override, json=body, headers=key("write"))
        assert refused.status_code == 403, refused.text
        accepted = gateway.post(override, json=body, headers=key("policy:override"))
        assert accepted.status_code == 202, accepted.text
        done = wait_run(gateway, accepted.json()["request_id"])
        assert done["status"] == "completed", done
        assert {p["policy"]: p["outcome"] for p in done["policies"]}["gate.gsoft"] == "overridden"
        recorded = done["policy_override"]
        assert recorded["reason"] == body["reason"] and recorded["policies"] == ["gate.gsoft"]
        assert recorded["by"].startswith("key:") and recorded["overrides_run"] == denied["request_id"]
        assert instances(denied["client_uuid"]) == ["gsoft-1"]
        assert gateway.post(override, json=body).status_code == 409, "only the client's last run"

        hard = provision("ghard")
        assert hard["status"] == "failed" and "gate.ghard (hard-mandatory)" in hard["message"], hard
        no = gateway.post(f"/api/runs/{hard['request_id']}/override", json=body)
        assert no.status_code == 409 and "cannot be overridden" in no.json()["detail"], no.text

        metrics = gateway.get("/metrics").text
        assert (
            'tenantform_policy_results_total{level="soft-mandatory",policy="gate.gsoft",result="deny"} 1.0'
            in (metrics)
        )

        written.append(POLICY_DIR / "broken.rego")
        written[-1].write_text("package gate.broken\nimport rego.v1\ndeny contains msg if {\n")
        broken = provision("fine")
        assert broken["status"] == "failed" and "broken.rego:" in broken["message"], broken
        assert instances(broken["client_uuid"]) == []
        assert gateway.get("/health").status_code == 200, "the gateway stays up"
    finally:
        for path in written:
            path.unlink(missing_ok=True)
