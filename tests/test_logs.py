"""Logs that follow a request: JSON lines carrying the run and the client, from the
gateway's dispatcher and from the flow-run process the session worker starts."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import pytest

from flows.logs import JsonLines, RunFields, bound, configure
from tests.conftest import WORKER_LOG


def json_handler(stream: io.StringIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.addFilter(RunFields())
    handler.setFormatter(JsonLines())
    return handler


def lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_bound_fields_reach_every_line_and_only_inside() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tenantform.test.logs")
    logger.addHandler(json_handler(stream))
    logger.setLevel(logging.INFO)
    with bound(run_id="r-1", client_id="c-1"), bound(client_id="c-2"):
        logger.info("inside %s", "bound")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    logger.info("outside")
    inside, failed, outside = lines(stream.getvalue())
    assert inside["message"] == "inside bound" and inside["level"] == "INFO"
    assert (inside["run_id"], inside["client_id"]) == ("r-1", "c-2"), "the innermost binding wins"
    assert "ValueError: boom" in failed["exception"] and failed["run_id"] == "r-1"
    assert "run_id" not in outside and "client_id" not in outside


def test_text_format_keeps_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure("text")
        logging.getLogger("tenantform.test.text").warning("plain")
        assert " - tenantform.test.text - WARNING - plain" in capsys.readouterr().err
    finally:
        root.handlers = before


@pytest.mark.usefixtures("worker")
def test_one_request_followed_across_gateway_and_flow_run(gateway: Any) -> None:
    stream = io.StringIO()
    handler = json_handler(stream)
    dispatcher_log = logging.getLogger("api.dispatcher")
    dispatcher_log.addHandler(handler)
    try:
        body = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "logs", "count": 1}
        accepted = gateway.post("/provision", json=body).json()
        run_id = accepted["request_id"]
        deadline = time.monotonic() + 180
        while gateway.get(f"/status/{run_id}").json()["status"] == "in_progress":
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.5)
        client_id = gateway.get(f"/api/runs/{run_id}").json()["client_uuid"]
    finally:
        dispatcher_log.removeHandler(handler)

    gateway_lines = [line for line in lines(stream.getvalue()) if line.get("run_id") == run_id]
    assert any("dispatched as flow run" in line["message"] for line in gateway_lines), stream.getvalue()
    assert any(line["message"].endswith("ended completed") for line in gateway_lines)
    assert all(line["client_id"] == client_id for line in gateway_lines)

    ours: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30  # the worker's stream is written as the run ends
    while not any("terraform-apply" in line.get("task_run_name", "") for line in ours):
        assert time.monotonic() < deadline, "no JSON line of the run's apply in the worker's log"
        time.sleep(0.5)
        ours = [line for line in lines(WORKER_LOG.read_text()) if line.get("run_id") == run_id]
    assert all(line["client_id"] == client_id for line in ours)
    assert {line["flow_run_id"] for line in ours if "flow_run_id" in line} and all(
        "flow_run_id" in line for line in ours if line["logger"].startswith("prefect.flow_runs")
    )
