"""A client's callback URL hears of every run's end: a local HTTP receiver checks the
HMAC-SHA256 signature, fails the first delivery, and gets the retry."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, wait_until
from tests.test_day_two import provisioned, wait_run

pytestmark = pytest.mark.usefixtures("worker")
SECRET = "callback-secret-0123456789"


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_SECRET", SECRET)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    heard: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            stamp = self.headers["X-Tenantform-Timestamp"]
            expected = (
                "sha256=" + hmac.new(SECRET.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
            )
            valid = hmac.compare_digest(expected, self.headers["X-Tenantform-Signature"])
            heard.append({"body": json.loads(body), "valid": valid, "at": time.monotonic()})
            self.send_response(500 if len(heard) == 1 else 200)  # the first delivery fails
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/hook", heard
    server.shutdown()


def test_every_end_is_delivered_signed_and_retried(signed: None, gateway: Any, receiver: Any) -> None:
    url, heard = receiver
    cid = provisioned(gateway, "hooked")
    bad = gateway.put(f"/api/clients/{cid}/settings", json={"callback_url": "ftp://nope"})
    assert bad.status_code == 422 and "callback_url" in bad.text
    assert (
        gateway.put(f"/api/clients/{cid}/settings", json={"callback_url": url}).json()["callback_url"] == url
    )
    run_id = gateway.patch(f"/api/clients/{cid}", json={"count": 2}).json()["request_id"]
    assert wait_run(gateway, run_id)["status"] == "completed"
    deadline = time.monotonic() + 60
    while len(heard) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(heard) == 2, heard
    assert all(h["valid"] for h in heard), "signature checks out"
    assert heard[0]["body"] == heard[1]["body"]
    assert heard[1]["body"]["request_id"] == run_id and heard[1]["body"]["status"] == "completed"
    assert heard[1]["at"] - heard[0]["at"] >= 1, "retried after a backoff"


def test_failed_and_cancelled_ends_are_delivered(signed: None, gateway: Any, receiver: Any) -> None:
    """A run refused by the cloud ends failed, its retry cancelled through the API: the
    callback URL hears both ends, each with its status and reason."""
    from tests.test_day_two import request

    url, heard = receiver
    faults = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud" / "_faults"
    faults.mkdir(parents=True, exist_ok=True)
    refuse = faults / "refuse-hookfail-"
    refuse.touch()
    try:
        first = gateway.post("/provision", json=request("hookfail-a")).json()["request_id"]
        cid = gateway.get(f"/api/runs/{first}").json()["client_uuid"]
        # Set while the run is still on its way to Prefect: its end is the first to hear.
        assert gateway.put(f"/api/clients/{cid}/settings", json={"callback_url": url}).status_code == 200
        failed = wait_run(gateway, first)
    finally:
        refuse.unlink()
    assert failed["status"] == "failed", failed

    retried = gateway.post(f"/api/clients/{cid}/retry").json()["request_id"]
    assert gateway.post(f"/api/runs/{retried}/cancel").status_code == 200
    cancelled = wait_run(gateway, retried)
    assert cancelled["status"] == "cancelled", cancelled

    def delivered() -> dict[str, dict[str, Any]]:  # the receiver answers 500 to the first one
        return {h["body"]["request_id"]: h["body"] for h in heard[1:]}

    wait_until(lambda: {first, retried} <= set(delivered()), 60, "both ends at the callback URL")
    assert all(h["valid"] for h in heard), "every delivery is signed"
    ends = delivered()
    assert ends[first] == {
        "request_id": first,
        "client_uuid": cid,
        "operation": "provision",
        "status": "failed",
        "message": failed["message"],
        "finished_at": ends[first]["finished_at"],
    }
    assert "injected permanent failure" in ends[first]["message"]
    assert ends[retried]["status"] == "cancelled" and ends[retried]["operation"] == "provision"
    # Cancelled before or after Prefect took it (either may win the race): the reason is the same.
    assert ends[retried]["message"] == cancelled["message"]
    assert cancelled["message"].endswith("cancelled through the API")
    assert ends[first]["finished_at"] and ends[retried]["finished_at"]
