"""Auth and bad input: clear 4xx naming the field, and nothing created. No worker needed:
rejected requests never reach Prefect."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import API_KEY, BASIC

GOOD = {
    "cloud_provider": "local",
    "provider_config": {},
    "instance_name_prefix": "test-instance",
    "count": 1,
}


def total_clients(gateway: Any) -> int:
    return int(gateway.get("/api/clients").json()["total"])


def test_health_needs_no_key_and_reports_checks(gateway: Any) -> None:
    body = gateway.get("/health", headers={"X-API-Key": ""}).json()
    assert body == {"status": "healthy", "checks": {"registry": "ok", "prefect": "ok"}}


UNKNOWN = "00000000-0000-4000-8000-000000000000"
"""Fixed, not random: pytest-xdist needs every test process to collect the same ids."""


@pytest.mark.parametrize("path", ["/", "/api", "/api/clients", f"/status/{UNKNOWN}"])
def test_missing_key_is_401_with_a_message(gateway: Any, path: str) -> None:
    response = gateway.get(path, headers={"X-API-Key": ""})
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]


def test_wrong_key_is_401(gateway: Any) -> None:
    response = gateway.get("/api/clients", headers={"X-API-Key": "nope"})
    assert response.status_code == 401 and response.json()["detail"] == "invalid X-API-Key"


def test_basic_auth_only_on_airflow_routes(gateway: Any) -> None:
    no_key = {"X-API-Key": ""}
    assert gateway.get(f"/status/{uuid.uuid4()}", headers=no_key, auth=BASIC).status_code == 404
    bad = gateway.get(f"/status/{uuid.uuid4()}", headers=no_key, auth=(BASIC[0], "wrong"))
    assert bad.status_code == 401 and "password" in bad.json()["detail"]
    assert gateway.get("/api/clients", headers=no_key, auth=BASIC).status_code == 401


def test_docs_and_info(gateway: Any) -> None:
    assert gateway.get("/docs").status_code == 200
    assert gateway.get("/redoc").status_code == 200
    spec = gateway.get("/openapi.json").json()
    assert "/provision" in spec["paths"] and "/status/{request_id}" in spec["paths"]
    info = gateway.get("/api").json()
    assert "local" in info["targets"] and "provision" in info["workflows"]
    assert gateway.get("/").json()["status"] == "running"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cloud_provider": "azure"}, "cloud_provider"),
        ({"count": 0}, "count"),
        ({"count": 21}, "count"),
        ({"count": "many"}, "count"),
        ({"instance_name_prefix": "Bad_Name!"}, "instance_name_prefix"),
        ({"instance_name_prefix": ""}, "instance_name_prefix"),
        ({"instance_name_prefix": "a" * 60}, "instance_name_prefix"),
        ({"provider_config": {"size": "gigantic"}}, "size"),
        ({"provider_config": {"colour": "red"}}, "colour"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_provision_input_is_400_naming_the_field(
    gateway: Any, change: dict[str, Any], field: str
) -> None:
    """The Airflow document's routes answer invalid data with 400 (the rest of the API 422)."""
    before = total_clients(gateway)
    response = gateway.post("/provision", json={**GOOD, **change})
    assert response.status_code == 400, response.text
    assert field in response.text
    assert total_clients(gateway) == before


def test_missing_body_fields_are_named(gateway: Any) -> None:
    response = gateway.post("/provision", json={"cloud_provider": "local"})
    assert response.status_code == 400
    assert "instance_name_prefix" in response.text


def test_unknown_and_malformed_ids(gateway: Any) -> None:
    assert gateway.get(f"/status/{uuid.uuid4()}").status_code == 404
    assert gateway.get("/status/not-a-uuid").status_code == 400
    assert gateway.get("/api/runs/not-a-uuid").status_code == 422
    assert gateway.get(f"/api/clients/{uuid.uuid4()}/status").status_code == 404
    assert gateway.get(f"/api/clients/{uuid.uuid4()}/outputs").status_code == 404
    assert gateway.delete(f"/api/clients/{uuid.uuid4()}").status_code == 404
    assert gateway.get(f"/api/runs/{uuid.uuid4()}").status_code == 404


def test_idempotency_key_with_another_body_is_409(gateway: Any) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = gateway.post("/provision", json=GOOD, headers=key)
    assert first.status_code == 202
    again = gateway.post("/provision", json=GOOD, headers=key)
    assert again.json()["request_id"] == first.json()["request_id"]
    other = gateway.post("/provision", json={**GOOD, "count": 2}, headers=key)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]


def test_metrics_count_requests_runs_and_drift(gateway: Any) -> None:
    gateway.get("/api/clients")
    gateway.post("/provision", json=GOOD)
    text = gateway.get("/metrics").text
    assert 'tenantform_http_requests_total{code="200",method="GET",route="/api/clients"}' in text
    assert 'tenantform_http_requests_total{code="202",method="POST",route="/provision"}' in text
    assert 'tenantform_runs{operation="provision"' in text
    assert 'tenantform_clients_drift{drift="unknown"} 1.0' in text
    assert "tenantform_oldest_accepted_age_seconds" in text
    assert "tenantform_dispatch_latency_seconds_bucket" in text
    assert API_KEY not in text


def test_the_grafana_dashboard_reads_metrics_the_gateway_serves() -> None:
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[1] / "deploy" / "grafana" / "tenantform.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"tenantform_[a-z_]+", e)}
    served = {
        "tenantform_http_requests_total",
        "tenantform_runs",
        "tenantform_dispatch_latency_seconds_bucket",
        "tenantform_oldest_accepted_age_seconds",
        "tenantform_clients_drift",
    }
    assert names and names <= served, names - served
