"""The module revision store: content-addressed, immutable, written atomically, safe to
record from many processes at once, and an unknown revision is an error a person can act on."""

from __future__ import annotations

import json
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flows.settings import Settings
from flows.terraform.modules import MODULES, module_version, tree_hash
from flows.terraform.revisions import RevisionStore, UnknownRevision, revision_store


def copy_of_local(tmp_path: Path) -> Path:
    module = tmp_path / "module"
    shutil.copytree(MODULES / "local", module)  # links become plain files, as a workspace copies
    return module


def test_the_id_is_the_module_version_and_files_are_copied_with_links_followed(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path / "store", MODULES)
    made = store.record("local", "v1")
    assert made.id == module_version("local") and made.label == "v1" and made.module == "local"
    where = store.files("local", made.id)
    assert where == tmp_path / "store" / "local" / made.id
    link = MODULES / "local" / "instance_variables.tf"
    assert link.is_symlink()  # the module links it; the revision holds the file itself
    copied = where / "instance_variables.tf"
    assert not copied.is_symlink() and copied.read_text() == link.read_text()
    assert json.loads((where / "revision.json").read_text())["id"] == made.id
    assert tree_hash(where) == made.id  # revision.json is not part of the content


def test_record_is_idempotent_and_keeps_the_first_sighting(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path, MODULES)
    first = store.record("local", "first")
    again = store.record("local", "second")
    assert again == first  # same id, same first_seen, the first label
    assert store.list("local") == [first]


def test_concurrent_records_make_one_revision_and_leave_no_staging(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path, MODULES)
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: store.record("local"), range(16)))
    assert len({m.model_dump_json() for m in made}) == 1
    assert [p.name for p in (tmp_path / "local").iterdir()] == [made[0].id]


def test_an_edited_module_is_a_new_revision_and_the_old_one_stays(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path / "store", MODULES)
    old = store.record("local")
    module = copy_of_local(tmp_path)
    (module / "extra.tf").write_text('resource "localcloud_bucket" "extra" {\n  name = "x"\n}\n')
    new = store.record("local", "edited", source=module)
    assert new.id != old.id
    assert [r.id for r in store.list("local")] == [old.id, new.id]  # oldest first
    assert (store.files("local", new.id) / "extra.tf").is_file()
    assert not (store.files("local", old.id) / "extra.tf").exists()
    (module / "extra.tf").unlink()  # the source changing afterwards changes no revision
    assert (store.files("local", new.id) / "extra.tf").is_file()


@pytest.mark.parametrize("revision", ["0123456789abcdef", "", "../local", ".hidden"])
def test_an_unknown_revision_names_the_module_the_revision_and_where_to_look(
    tmp_path: Path, revision: str
) -> None:
    store = RevisionStore(tmp_path, MODULES)
    store.record("local")
    with pytest.raises(UnknownRevision) as caught:
        store.files("local", revision)
    message = str(caught.value)
    assert "'local'" in message and repr(revision) in message
    assert "GET /api/targets/{target}/revisions" in message


def test_the_store_lives_under_the_data_dir_unless_set(tmp_path: Path) -> None:
    assert revision_store(Settings(data_dir=tmp_path)).root == tmp_path / "revisions"
    shared = tmp_path / "shared"
    assert revision_store(Settings(data_dir=tmp_path, module_revisions_dir=shared)).root == shared


def test_migration_0008_pins_existing_clients_to_the_module_that_built_them(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from api.registry.db import MIGRATIONS, Registry

    registry = Registry(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with registry.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")
        for cid, version in (("built", "0123456789abcdef"), ("never-built", None)):
            conn.execute(
                text(
                    "INSERT INTO clients (id, kind, target, inputs, fingerprint, status, status_message,"
                    " module_version, approval, remediation, drift_status, drift_reason, created_at,"
                    " updated_at) VALUES (:id, 'instances', 'local', '{}', 'f', 'ready', '', :v, 'auto',"
                    " 'report', 'unknown', '', '2026-01-01', '2026-01-01')"
                ),
                {"id": cid, "v": version},
            )
    registry.migrate()
    with registry.engine.begin() as conn:
        rows = dict(conn.execute(text("SELECT id, revision FROM clients")).all())
        labels = set(conn.execute(text("SELECT labels FROM clients")).scalars())
    assert rows == {"built": "0123456789abcdef", "never-built": None}
    assert labels == {"{}"}
    registry.dispose()


def test_a_completed_provision_pins_its_client_a_failed_upgrade_does_not(tmp_path: Path) -> None:
    """The registry alone: the revision moves with a completed provision, never a failed one;
    day-two runs use the pinned revision, a retry repeats its run's."""
    from api.clients.service import ClientService
    from api.registry.db import Registry
    from api.registry.models import RunStatus
    from api.runs.service import RunService
    from flows.contract import Operation

    store = RevisionStore(tmp_path / "store", MODULES)
    old = store.record("local")
    module = copy_of_local(tmp_path)
    (module / "extra.tf").write_text('resource "localcloud_bucket" "extra" {\n  name = "x"\n}\n')
    new = store.record("local", source=module)
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    registry.migrate()
    clients, runs = ClientService(registry, revisions=store), RunService(registry)

    def ran(run_id: str, status: RunStatus) -> None:
        assert runs.dispatched(run_id, str(uuid.uuid4()))
        runs.end(run_id, status, str(status), {"module_version": runs.get_run(run_id).revision})

    inputs = {"cloud_provider": "local", "instance_name_prefix": "pin", "count": 1}
    first = clients.create_client(kind="instances", target="local", inputs=inputs)
    assert first.run.revision == old.id
    ran(first.run.id, RunStatus.completed)
    assert clients.get_client(first.client.id)[0].revision == old.id

    upgrade = clients.upgrade(first.client.id, new.id)
    assert upgrade.run.revision == new.id and upgrade.run.parameters["revision"] == new.id
    ran(upgrade.run.id, RunStatus.failed)
    assert clients.get_client(first.client.id)[0].revision == old.id  # still on the old one
    again = clients.retry(first.client.id)  # a failed upgrade retried is that upgrade again
    assert again.run.revision == new.id
    ran(again.run.id, RunStatus.failed)
    plan = clients.start_operation(first.client.id, Operation.plan)
    assert plan.run.revision == old.id  # day two: the pinned revision
    ran(plan.run.id, RunStatus.completed)
    upgrade = clients.upgrade(first.client.id, new.id)
    ran(upgrade.run.id, RunStatus.completed)
    client = clients.get_client(first.client.id)[0]
    assert client.revision == new.id and client.module_version == new.id
    registry.dispose()
