"""Labels, targets and revisions through the API, without a worker: labels set at creation
and by PATCH (no run), a bad label a 4xx naming the field, the ``label`` filter, the targets
and their revisions, and the upgrade route's refusals. Runs stay accepted: nothing here
needs Terraform (tests/test_revisions.py runs them)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from api.registry.models import Run
from flows.terraform.modules import module_version

INSTANCES = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "lbl", "count": 1}
HOSPITAL = {"client_name": "Labelled Hospital", "environment": "prod", "region": "me-central2"}


def provision(gateway: Any, labels: dict[str, Any] | None = None) -> str:
    body = {**INSTANCES, **({"labels": labels} if labels is not None else {})}
    response = gateway.post("/provision", json=body)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    return str(gateway.app.state.runs.get_run(request_id).client_id)


def runs_of(gateway: Any, client_id: str) -> list[Run]:
    with gateway.app.state.registry.session() as session:
        return list(session.scalars(select(Run).where(Run.client_id == client_id).order_by(Run.created_at)))


def test_labels_at_creation_are_shown_and_kept_out_of_the_inputs(gateway: Any) -> None:
    client_id = provision(gateway, {"ring": "canary", "region": "eu"})
    view = gateway.get(f"/api/clients/{client_id}/status").json()
    assert view["labels"] == {"ring": "canary", "region": "eu"}
    assert "labels" not in view["inputs"] and view["revision"] is None  # pinned once provisioned
    (run,) = runs_of(gateway, client_id)
    assert run.revision == module_version("local")  # the newest: the module as on disk
    assert run.parameters["revision"] == run.revision
    assert run.parameters["labels"] == {"ring": "canary", "region": "eu"}

    hospital = {**HOSPITAL, "client_uuid": str(uuid.uuid4()), "labels": {"tier": "gold"}}
    assert gateway.post("/api/hospitals/register", json=hospital).status_code == 202
    view = gateway.get(f"/api/hospitals/{hospital['client_uuid']}/status").json()
    assert view["labels"] == {"tier": "gold"} and "labels" not in view["inputs"]


@pytest.mark.parametrize(
    "labels",
    [
        {"Ring": "canary"},  # upper case key
        {"-ring": "canary"},
        {"r" * 64: "x"},
        {"ring": "can ary"},
        {"ring": "x" * 64},
        {f"k{i}": "v" for i in range(33)},
        {"ring": 3},
    ],
)
def test_a_bad_label_is_refused_naming_the_field(gateway: Any, labels: dict[str, Any]) -> None:
    hospital = {**HOSPITAL, "client_uuid": str(uuid.uuid4()), "labels": labels}
    response = gateway.post("/api/hospitals/register", json=hospital)
    assert response.status_code == 422, response.text
    assert all("labels" in e["loc"] for e in response.json()["detail"])
    airflow = gateway.post("/provision", json={**INSTANCES, "labels": labels})
    assert airflow.status_code == 400 and "labels" in airflow.text  # the Airflow routes answer 400
    assert gateway.get("/api/clients").json()["total"] == 0


def test_a_labels_only_patch_changes_the_registry_and_starts_no_run(gateway: Any) -> None:
    client_id = provision(gateway, {"ring": "canary", "region": "eu"})
    response = gateway.patch(f"/api/clients/{client_id}", json={"labels": {"region": None, "team": "a"}})
    assert response.status_code == 200, response.text
    assert response.json()["message"].startswith("labels updated") and "no run" in response.json()["message"]
    assert gateway.get(f"/api/clients/{client_id}/status").json()["labels"] == {"ring": "canary", "team": "a"}
    assert len(runs_of(gateway, client_id)) == 1

    bad = gateway.patch(f"/api/clients/{client_id}", json={"labels": {"ring": "no spaces"}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "labels"]
    assert gateway.patch(f"/api/clients/{client_id}", json={"labels": ["x"]}).status_code == 422
    assert gateway.patch(f"/api/clients/{client_id}", json={"labels": None}).status_code == 200
    assert gateway.get(f"/api/clients/{client_id}/status").json()["labels"] == {}
    assert len(runs_of(gateway, client_id)) == 1

    # Labels and inputs together: the inputs' run carries the new labels.
    changed = gateway.patch(f"/api/clients/{client_id}", json={"labels": {"ring": "b"}, "count": 2})
    assert changed.status_code == 202, changed.text
    assert runs_of(gateway, client_id)[-1].parameters["labels"] == {"ring": "b"}


def test_list_clients_by_label(gateway: Any) -> None:
    eu_canary = provision(gateway, {"ring": "canary", "region": "eu"})
    us_canary = provision(gateway, {"ring": "canary", "region": "us"})
    eu_plain = provision(gateway, {"region": "eu"})
    provision(gateway)

    def listed(*labels: str) -> set[str]:
        response = gateway.get("/api/clients", params=[("label", label) for label in labels])
        assert response.status_code == 200, response.text
        return {c["client_uuid"] for c in response.json()["clients"]}

    assert listed("ring=canary") == {eu_canary, us_canary}
    assert listed("ring=canary", "region=eu") == {eu_canary}
    assert listed("region") == {eu_canary, us_canary, eu_plain}
    assert listed("ring=nope") == set()
    for bad in ("Ring=canary", "ring=can ary", "=x"):
        response = gateway.get("/api/clients", params={"label": bad})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "label"]


def test_targets_and_their_revisions(gateway: Any) -> None:
    client_id = provision(gateway)
    targets = {t["name"]: t for t in gateway.get("/api/targets").json()["targets"]}
    local = targets["local"]
    assert local["module"] == "local" and local["newest_revision"]["id"] == module_version("local")
    assert local["clients"] == 1 and local["clients_on_newest"] == 0  # pinned once provisioned
    assert {"local-hospital", "aws-ec2"} <= set(targets)

    listed = gateway.get("/api/targets/local/revisions").json()
    newest = next(r for r in listed["revisions"] if r["newest"])
    assert newest["id"] == module_version("local") and newest["label"]
    assert listed["unpinned"] == 1 and newest["clients"] == 0

    with gateway.app.state.registry.session() as session:
        run = session.scalars(select(Run).where(Run.client_id == client_id)).one()
        run.client.revision = run.revision
    listed = gateway.get("/api/targets/local/revisions").json()
    newest = next(r for r in listed["revisions"] if r["newest"])
    assert newest["clients"] == 1 and newest["client_uuids"] == [client_id] and listed["unpinned"] == 0

    missing = gateway.get("/api/targets/no-such-target/revisions")
    assert missing.status_code == 404 and "GET /api/targets" in missing.json()["detail"]


def test_upgrade_refusals_and_a_known_revision(gateway: Any) -> None:
    client_id = provision(gateway)
    url = f"/api/clients/{client_id}/upgrade"
    assert gateway.post(url, json={}).status_code == 422
    bad = gateway.post(url, json={"revision": "not-a-hash"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "revision"]
    unknown_client = gateway.post(f"/api/clients/{uuid.uuid4()}/upgrade", json={"revision": "0" * 16})
    assert unknown_client.status_code == 404
    unknown = gateway.post(url, json={"revision": "0" * 16})
    assert unknown.status_code == 409 and "GET /api/targets/{target}/revisions" in unknown.json()["detail"]

    accepted = gateway.post(url, json={"revision": module_version("local")})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["operation"] == "provision"
    last = runs_of(gateway, client_id)[-1]
    assert last.id == accepted.json()["request_id"] and last.revision == module_version("local")

    # A hospital's module is another: the instances' revision is unknown to it.
    hospital = {**HOSPITAL, "client_uuid": str(uuid.uuid4())}
    gateway.post("/api/hospitals/register", json=hospital)
    other = gateway.post(
        f"/api/clients/{hospital['client_uuid']}/upgrade", json={"revision": module_version("local")}
    )
    assert other.status_code == 409
