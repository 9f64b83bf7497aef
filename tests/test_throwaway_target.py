"""A target is a catalogue entry, a module, an input model and an example: in a copy of
the project, a throwaway target added in exactly those four touches provisions and
destroys on localcloud with real Terraform, proving nothing else needs editing. Also: the
doctor's cloud checks are the catalogue's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Touch 1: the input model (with the outputs it promises).
INPUT_MODEL = """
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flows.clouds.base import StackContext


class ThrowawayInputs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(pattern=r"^[a-z][a-z0-9-]{0,20}$")

    def to_tfvars(self, ctx: StackContext) -> dict[str, Any]:
        return {"bucket_name": f"{ctx.client_id}-{self.label}"}

    def sensitive_values(self) -> list[str]:
        return []


class ThrowawayOutputs(BaseModel):
    bucket: str
"""

# Touch 2: the Terraform module, on the localcloud provider.
MODULE = """terraform {
  required_version = ">= 1.0.3"
  required_providers {
    localcloud = {
      source  = "tenantform/localcloud"
      version = "0.1.0"
    }
  }
}

variable "bucket_name" {
  type        = string
  description = "The bucket's name."
}

resource "localcloud_bucket" "this" {
  name          = var.bucket_name
  force_destroy = true
}

output "bucket" {
  description = "The bucket's name."
  value       = localcloud_bucket.this.name
}
"""

# Touches 3 and 4: the catalogue entry, with its example.
ENTRY = """

from flows.clouds.throwaway import ThrowawayInputs, ThrowawayOutputs  # noqa: E402

TARGETS = (
    *TARGETS,
    Target(
        name="throwaway",
        module="throwaway",
        inputs=ThrowawayInputs,
        outputs=ThrowawayOutputs,
        backend=local_or_pg_backend,
        description="A bucket on localcloud, added by a test.",
        example={"label": "scratch"},
    ),
)
"""

RUN = """
import json, uuid
from flows.contract import FlowParameters
from flows.provision import destroy, provision
from flows.targets import get_target

target = get_target("throwaway")
params = FlowParameters(
    run_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), target="throwaway", inputs=dict(target.example)
)
made = provision(params=params)
gone = destroy(params=params.model_copy(update={"run_id": str(uuid.uuid4())}))
print(json.dumps({"client_id": params.client_id, "made": made, "gone": gone}))
"""


def test_a_new_target_is_four_touches(tmp_path: Path, prefect_server: str) -> None:
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", ".terraform*")
    for package in ("flows", "infrastructure"):  # all a flow run imports (imports point down)
        shutil.copytree(ROOT / package, project / package, ignore=ignore, symlinks=True)
    (project / "flows" / "clouds" / "throwaway.py").write_text(INPUT_MODEL)
    module = project / "infrastructure" / "modules" / "throwaway"
    module.mkdir()
    (module / "main.tf").write_text(MODULE)
    with (project / "flows" / "targets" / "catalogue.py").open("a") as catalogue:
        catalogue.write(ENTRY)

    env = {
        **os.environ,
        "PYTHONPATH": str(project),
        "PREFECT_API_URL": prefect_server,
        "TENANTFORM_DATA_DIR": str(tmp_path / "data"),
        "MODULES_DIR": str(project / "infrastructure" / "modules"),
    }
    done = subprocess.run(
        [sys.executable, "-c", RUN], cwd=project, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    client_id = answer["client_id"]
    assert answer["made"]["outputs"] == {"bucket": f"{client_id}-scratch"}
    assert answer["made"]["change_summary"]["add"] == 1
    assert answer["gone"]["change_summary"]["remove"] == 1
    assert not (ROOT / "flows" / "clouds" / "throwaway.py").exists(), "the project itself is untouched"


def test_doctor_checks_each_cloud_account_of_the_catalogue_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments import doctor
    from flows.settings import get_settings
    from flows.targets import all_targets

    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "GCP_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OCI_TENANCY_OCID", "t")
    monkeypatch.setenv("OCI_USER_OCID", "u")
    monkeypatch.setenv("OCI_FINGERPRINT", "f")
    monkeypatch.setenv("OCI_PRIVATE_KEY_PATH", "/k")
    get_settings.cache_clear()
    try:
        findings = {f.check: f for f in doctor._credentials()}
    finally:
        get_settings.cache_clear()
    accounts = {t.credentials.name for t in all_targets().values() if t.credentials}
    assert set(findings) == accounts == {"AWS credentials", "OCI credentials", "GCP project"}
    assert findings["OCI credentials"].status == "ok"
    assert (
        findings["AWS credentials"].status == "warning"
        and "AWS_PROFILE" in findings["AWS credentials"].detail
    )
    assert findings["GCP project"].status == "warning"
