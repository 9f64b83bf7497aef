"""Module revisions end to end, with a real worker, real Terraform and localcloud: a module
edit (a bucket added) is recorded as a new revision and reaches no client by itself (a
sweep finds every client in sync, a PATCH keeps its client on its own revision); an
upgrade brings it to one client; and a client pinned to the old revision is applied with
that revision's files by another worker process, with a data dir of its own and the same
revision store, whose module on disk has the edit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from flows.terraform.modules import MODULES, module_version
from tests.test_day_two import instance_ids, provisioned, wait_run
from tests.test_reconcile import checked

pytestmark = pytest.mark.usefixtures("worker")

ROOT = Path(__file__).resolve().parents[1]
LOCALCLOUD = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud"
EDIT = """resource "localcloud_bucket" "revision" {
  name          = "${var.client_id}-rev"
  force_destroy = true
}
"""

RUN = """
import json, sys
from flows.contract import FlowParameters
from flows.provision import provision
from flows.terraform.modules import module_version

params = FlowParameters.model_validate_json(sys.argv[1])
made = provision(params=params)
print(json.dumps({"on_disk": module_version("local"), "used": made["module_version"]}))
"""


def edited_module(where: Path) -> Path:
    """The ``local`` module with a bucket added (links become plain files)."""
    shutil.copytree(MODULES / "local", where)
    (where / "revision_bucket.tf").write_text(EDIT)
    return where


def has_bucket(localcloud: Path, client_id: str) -> bool:
    return (localcloud / "bucket-data" / f"{client_id}-rev").is_dir()


def revision_of(gateway: Any, client_id: str) -> str | None:
    view: dict[str, Any] = gateway.get(f"/api/clients/{client_id}/status").json()
    return view["revision"]


def test_a_module_edit_reaches_a_client_only_by_its_upgrade(gateway: Any, tmp_path: Path) -> None:
    old = module_version("local")
    first, second = provisioned(gateway, "rev-a"), provisioned(gateway, "rev-b")
    assert revision_of(gateway, first) == revision_of(gateway, second) == old

    new = gateway.app.state.clients.revisions.record("local", "edited", source=edited_module(tmp_path / "m"))
    assert new.id != old
    listed = {r["id"]: r for r in gateway.get("/api/targets/local/revisions").json()["revisions"]}
    assert listed[new.id]["clients"] == 0 and listed[new.id]["label"] == "edited"
    assert set(listed[old]["client_uuids"]) == {first, second}

    # A sweep plans each client against its own revision: the edit is no drift.
    sweep = gateway.post("/api/reconcile", json={"target": "local"})
    assert sweep.status_code == 202 and sweep.json()["clients"] == 2, sweep.text
    for client_id in (first, second):
        report = checked(gateway, client_id, 0)
        assert report["status"] == "in_sync", report

    # A PATCH applies the change asked for, on the client's own revision.
    changed = gateway.patch(f"/api/clients/{first}", json={"count": 2})
    assert changed.status_code == 202, changed.text
    done = wait_run(gateway, changed.json()["request_id"])
    assert done["status"] == "completed" and done["result"]["module_version"] == old, done
    assert len(instance_ids(gateway, first)) == 2 and not has_bucket(LOCALCLOUD, first)
    assert revision_of(gateway, first) == old

    # The upgrade brings the edit to that one client.
    upgraded = gateway.post(f"/api/clients/{second}/upgrade", json={"revision": new.id})
    assert upgraded.status_code == 202, upgraded.text
    done = wait_run(gateway, upgraded.json()["request_id"])
    assert done["status"] == "completed", done
    assert done["result"]["change_summary"]["add"] == 1 and done["result"]["module_version"] == new.id
    assert has_bucket(LOCALCLOUD, second) and not has_bucket(LOCALCLOUD, first)
    history = gateway.get(f"/api/clients/{second}/runs").json()["runs"]
    assert [r["revision"] for r in history] == [new.id, old]  # newest first
    assert revision_of(gateway, second) == new.id and revision_of(gateway, first) == old
    listed = {r["id"]: r for r in gateway.get("/api/targets/local/revisions").json()["revisions"]}
    assert listed[new.id]["client_uuids"] == [second] and listed[old]["client_uuids"] == [first]


def test_another_worker_applies_the_pinned_revision_not_its_module_on_disk(
    gateway: Any, tmp_path: Path, prefect_server: str
) -> None:
    """A flow run in another process: its own project copy (the module on disk edited), its own
    data dir, the shared revision store."""
    store = gateway.app.state.clients.revisions
    old = store.current("local")
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", ".terraform*")
    for package in ("flows", "infrastructure"):  # all a flow run imports (imports point down)
        shutil.copytree(ROOT / package, project / package, ignore=ignore, symlinks=True)
    (project / "infrastructure" / "modules" / "local" / "revision_bucket.tf").write_text(EDIT)
    data = tmp_path / "data"
    client_id = str(uuid.uuid4())
    params = {
        "run_id": str(uuid.uuid4()),
        "client_id": client_id,
        "target": "local",
        "inputs": {
            "cloud_provider": "local",
            "provider_config": {},
            "instance_name_prefix": "pin",
            "count": 1,
        },
        "revision": old.id,
    }
    env = {
        **os.environ,
        "PYTHONPATH": str(project),
        "PREFECT_API_URL": prefect_server,
        "TENANTFORM_DATA_DIR": str(data),
        "MODULE_REVISIONS_DIR": str(store.root),
        "MODULES_DIR": str(project / "infrastructure" / "modules"),
    }
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(params)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["on_disk"] != old.id and answer["used"] == old.id
    assert len(list((data / "localcloud" / "instances").glob("*.json"))) == 1
    assert not has_bucket(data / "localcloud", client_id), "the module on disk was not used"
    assert not (data / "revisions").exists(), "a worker reads the shared store, never its own"
