"""What a person sees, in Debian's headless Chromium: after a `local` provision through a
real gateway process, a real worker and a Prefect server with its UI on, the gateway's
/docs and /redoc list the operations (their assets come from an installed package, no
network), the Prefect run page lists the run's tasks, and the result artifact is a table.
Screenshots go to test-output/browser/ (git-ignored). Fails, never skips, without
chromium: `apt-get install -y chromium`."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import (
    free_port,
    gateway_env,
    http_ok,
    start_gateway,
    start_prefect_server,
    start_worker,
    stop_process,
    stop_worker,
    wait_until,
)

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[1] / "test-output" / "browser"
KEY = "browser-key-0123456789"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A Prefect server with its UI, the deployments, a worker, the gateway; one provision."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.apply import apply_deployments

    _chromium()  # before minutes of set-up
    tmp = tmp_path_factory.mktemp("browser")
    prefect_port, port = free_port(), free_port()
    prefect_url = f"http://127.0.0.1:{prefect_port}"
    env = gateway_env(tmp, f"{prefect_url}/api", KEY)
    home = tmp / "prefect"
    home.mkdir()
    server = start_prefect_server(home, prefect_port, ui=True)
    worker = gateway = None
    try:
        wait_until(lambda: http_ok(f"{prefect_url}/api/health"), 240, "the Prefect server")
        with temporary_settings(updates={PREFECT_API_URL: f"{prefect_url}/api"}):
            asyncio.run(apply_deployments())
        worker = start_worker(env, tmp / "worker.log")
        gateway = start_gateway(env, port, tmp / "gateway.log")
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=10)
        wait_until(lambda: api.get("/health").status_code == 200, 120, "the gateway")
        request = {"cloud_provider": "local", "instance_name_prefix": "browser", "count": 1}
        request_id = api.post("/provision", json=request).json()["request_id"]
        wait_until(
            lambda: api.get(f"/status/{request_id}").json()["status"] != "in_progress", 300, "the provision"
        )
        assert api.get(f"/status/{request_id}").json()["status"] == "completed"
        run = api.get(f"/api/runs/{request_id}").json()
        yield {"gateway": f"http://127.0.0.1:{port}", "prefect": prefect_url, "run": run}
    finally:
        if gateway is not None:
            stop_process(gateway)
        if worker is not None:
            stop_worker(worker)
        stop_process(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Set up after ``stack``: Playwright's sync API keeps an event loop running."""
    from playwright.sync_api import sync_playwright

    _chromium()
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as p:
        # Offline on purpose: a page that needs a CDN shows that here as it would for a person.
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _chromium() -> None:
    assert Path(CHROMIUM).is_file(), "Debian chromium is missing: apt-get install -y chromium"


def _page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route("**/*", _only_loopback)
    return context.new_page()


def _only_loopback(route: Any) -> None:
    """No request leaves the machine, as on the hospitals' networks."""
    if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


def test_docs_list_the_operations_offline(stack: dict[str, Any], browser: Any) -> None:
    html = httpx.get(f"{stack['gateway']}/docs").text + httpx.get(f"{stack['gateway']}/redoc").text
    assert "cdn" not in html and "/static-offline-docs/swagger-ui-bundle.js" in html
    page = _page(browser)
    page.goto(f"{stack['gateway']}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    page.screenshot(path=SHOTS / "docs.png", full_page=False)
    assert {"/provision", "/status/{request_id}", "/health"} <= {p.replace("\u200b", "") for p in paths}

    page.goto(f"{stack['gateway']}/redoc")
    page.wait_for_selector("text=/provision", timeout=30_000)
    page.screenshot(path=SHOTS / "redoc.png")
    assert "tenantform" in page.title()


def test_prefect_run_page_lists_the_tasks(stack: dict[str, Any], browser: Any) -> None:
    page = _page(browser)
    flow_run_id = stack["run"]["flow_run_id"]
    page.goto(f"{stack['prefect']}/runs/flow-run/{flow_run_id}")
    page.wait_for_selector("text=Completed", timeout=60_000)
    page.get_by_text("Task Runs", exact=True).click()
    page.wait_for_selector("text=terraform-apply", timeout=60_000)
    text = page.inner_text("body")
    page.screenshot(path=SHOTS / "flow-run.png", full_page=True)
    for task in ("prepare-vars", "terraform-init", "terraform-apply", "read-outputs"):
        assert task in text, task


def test_result_artifact_is_a_table(stack: dict[str, Any], browser: Any) -> None:
    page = _page(browser)
    flow_run_id = stack["run"]["flow_run_id"]
    page.goto(f"{stack['prefect']}/runs/flow-run/{flow_run_id}")
    page.wait_for_selector("text=Completed", timeout=60_000)
    page.get_by_text("Artifacts", exact=True).click()
    page.get_by_text(f"provision-{stack['run']['client_uuid']}".lower()).first.click()
    page.wait_for_selector("table", timeout=60_000)
    page.screenshot(path=SHOTS / "artifact.png", full_page=True)
    headers = page.locator("th").all_inner_texts()
    assert {"Terraform", "added", "changed", "destroyed", "Output", "Value"} <= set(headers)
    cells = page.locator("td").all_inner_texts()
    assert "apply" in cells and "instances" in cells
