"""drongo, a Secret Manager REST emulator, on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, stop_process, wait_until


@pytest.fixture(scope="session")
def drongo_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "drongo"), "server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url, timeout=1).status_code < 600, 30, "drongo")
        yield url
    finally:
        stop_process(proc)
