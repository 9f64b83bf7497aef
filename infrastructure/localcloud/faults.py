"""Fault injection for tests, driven by environment variables.

Terraform starts a fresh provider process per command, so counters live in files
under the data dir rather than in memory.

- ``LOCALCLOUD_API_LATENCY_SECONDS``: sleep on every read, create, update and delete of a
  resource, as a real provider waits on its cloud's API (off by default; the fleet benches
  use it so worker scaling shows what it would against a cloud, on a 2-core machine).
- ``LOCALCLOUD_CREATE_DELAY_SECONDS``: sleep before every create (only for objects whose
  name starts with ``LOCALCLOUD_DELAY_NAME_PREFIX`` when that is set).
- ``LOCALCLOUD_FAIL_NTH_CREATE``: the Nth create (1-based, counted across processes) fails
  permanently.
- ``LOCALCLOUD_FAIL_TRANSIENT_ONCE``: the first create fails with a transient error, once
  per value of the variable (a token, so each test can arm it afresh).
- A file ``<data dir>/_faults/refuse-<prefix>``: every create of an object whose name starts
  with ``<prefix>`` fails permanently while the file exists (a fault a test can arm and
  remove while a worker runs).
- A file ``<data dir>/_faults/delay-<prefix>`` holding seconds: every create of an object
  whose name starts with ``<prefix>`` sleeps that long first (a test's own pace, armed
  while a worker runs).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from infrastructure.localcloud.store import data_dir


class InjectedFault(Exception):
    """Raised inside the provider; its message becomes a Terraform diagnostic."""


def _bump_counter(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        count = int(fh.read() or 0) + 1
        fh.seek(0)
        fh.truncate()
        fh.write(str(count))
        return count


def api_round_trip() -> None:
    latency = float(os.environ.get("LOCALCLOUD_API_LATENCY_SECONDS", "0") or 0)
    if latency > 0:
        time.sleep(latency)


def before_create(name: str = "") -> None:
    delay = float(os.environ.get("LOCALCLOUD_CREATE_DELAY_SECONDS", "0") or 0)
    if delay and name.startswith(os.environ.get("LOCALCLOUD_DELAY_NAME_PREFIX", "")):
        time.sleep(delay)
    faults = data_dir() / "_faults"
    if name and faults.is_dir():
        for marker in faults.glob("delay-*"):
            if name.startswith(marker.name.removeprefix("delay-")):
                time.sleep(float(marker.read_text() or 0))
        for marker in faults.glob("refuse-*"):
            if name.startswith(marker.name.removeprefix("refuse-")):
                raise InjectedFault(f"quota exceeded: localcloud refuses {name} (injected permanent failure)")
    token = os.environ.get("LOCALCLOUD_FAIL_TRANSIENT_ONCE")
    if token:
        marker = faults / f"transient-{token}"
        faults.mkdir(parents=True, exist_ok=True)
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            pass
        else:
            raise InjectedFault("503 Service Unavailable: localcloud is temporarily unavailable")
    nth = os.environ.get("LOCALCLOUD_FAIL_NTH_CREATE")
    if nth and _bump_counter(faults / "create-count") == int(nth):
        raise InjectedFault("quota exceeded: localcloud refuses this create (injected permanent failure)")
