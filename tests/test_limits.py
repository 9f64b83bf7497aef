"""A body over the limit is a 413 with a message and changes nothing; a 422 quotes only
a short excerpt of what it rejects. Against the session's real gateway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from api.limits import EXCERPT
from api.settings import GatewaySettings

LIMIT = GatewaySettings().max_body_bytes


def _total(gateway: Any) -> int:
    return int(gateway.get("/api/clients").json()["total"])


def test_the_default_limit_is_one_mebibyte() -> None:
    assert LIMIT == 1_048_576


def test_a_body_over_the_limit_is_413_and_changes_nothing(gateway: Any) -> None:
    before = _total(gateway)
    huge = {"cloud_provider": "local", "provider_config": {"pad": "x" * LIMIT}, "count": 1}
    response = gateway.post("/provision", json=huge)
    assert response.status_code == 413, response.text[:300]
    assert "MAX_BODY_BYTES" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"name": "'
        for _ in range(LIMIT // 65536 + 2):
            yield b"y" * 65536
        yield b'"}'

    streamed = gateway.post("/api/reconcile", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413, streamed.text[:300]
    assert _total(gateway) == before


def test_a_422_quotes_a_short_excerpt_of_the_input(gateway: Any) -> None:
    long_name = "z" * 50_000
    response = gateway.post(
        "/provision",
        json={
            "cloud_provider": "local",
            "provider_config": {},
            "instance_name_prefix": long_name,
            "count": 1,
        },
    )
    assert response.status_code == 400  # the Airflow route's own code for invalid data
    assert len(response.text) < 4 * EXCERPT + 2000, len(response.text)
    assert long_name not in response.text
    patched = gateway.post("/api/reconcile", json={"status": "q" * 50_000})
    assert patched.status_code == 422 and "status" in patched.text
    assert len(patched.text) < 4 * EXCERPT + 2000
