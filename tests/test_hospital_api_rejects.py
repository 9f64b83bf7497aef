"""Bad hospital input: a 422 naming the field, or a 404/409 that says why; nothing created."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flows.clouds.hospital import database_name

GOOD = {"client_name": "City General Hospital", "environment": "prod", "region": "me-central2"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_uuid": "not-a-uuid"}, "client_uuid"),
        ({"client_name": ""}, "client_name"),
        ({"client_name": "   "}, "client_name"),
        ({"client_name": "x" * 300}, "client_name"),
        ({"client_name": "!!!"}, "client_name"),
        ({"region": "Middle East"}, "region"),
        ({"region": "me-central"}, "region"),
        ({"environment": "production-ish"}, "environment"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_registration_is_422_naming_the_field(gateway: Any, change: dict[str, Any], field: str) -> None:
    body = {**GOOD, "client_uuid": str(uuid.uuid4()), **change}
    response = gateway.post("/api/hospitals/register", json=body)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert gateway.get("/api/hospitals").json()["total"] == 0


def test_unknown_hospital_routes_are_404(gateway: Any) -> None:
    unknown = uuid.uuid4()
    assert gateway.get(f"/api/hospitals/{unknown}/status").status_code == 404
    assert gateway.post(f"/api/hospitals/{unknown}/create-tables").status_code == 404
    assert gateway.get("/api/hospitals/nope/status").status_code == 422


def test_hospital_routes_need_the_key(gateway: Any) -> None:
    assert gateway.get("/api/hospitals", headers={"X-API-Key": ""}).status_code == 401


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("City General Hospital", "city_general_hospital"),
        ("City General - Branch A", "city_general_branch_a"),
        ("Hôpital Saint-Éloi", "hopital_saint_eloi"),
        ("123 Health", "db_123_health"),
        ("A" * 100, "a" * 64),
    ],
)
def test_database_name_is_sanitised(name: str, expected: str) -> None:
    assert database_name(name) == expected
