"""The image's HEALTHCHECK, one script for every role the image plays (``TENANTFORM_ROLE``
or the first argument): standard library only, so a probe costs no heavy import.

- ``gateway``: ``/health`` answers 200 (the registry and Prefect are reachable).
- ``prefect``: the Prefect server's ``/api/health`` answers 200.
- ``worker``: a ``prefect worker`` process runs in this container and the Prefect API
  accepts this container's credentials (``PREFECT_API_AUTH_STRING``) for the work pool.
- ``none``: always healthy (one-shot jobs such as ``tenantform deploy``).
"""

from __future__ import annotations

import base64
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path


def _get(url: str, auth_string: str | None = None) -> int:
    request = urllib.request.Request(url)  # noqa: S310 - fixed http URLs of this container's peers
    if auth_string:
        token = base64.b64encode(auth_string.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=4) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _worker_running() -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv and b"start" in argv and any(a.endswith(b"prefect") for a in argv):
            return True
    return False


def check(role: str) -> str | None:
    """None when healthy, else why not."""
    if role == "none":
        return None
    if role == "gateway":
        port = os.environ.get("GATEWAY_PORT", "8000")
        code = _get(f"http://127.0.0.1:{port}/health")
        return None if code == 200 else f"gateway /health answered {code}"
    if role == "prefect":
        code = _get("http://127.0.0.1:4200/api/health")
        return None if code == 200 else f"Prefect /api/health answered {code}"
    if role == "worker":
        if not _worker_running():
            return "no prefect worker process"
        api = os.environ.get("PREFECT_API_URL", "").rstrip("/")
        pool = os.environ.get("TENANTFORM_WORK_POOL", "tenantform")
        code = _get(f"{api}/work_pools/{pool}", os.environ.get("PREFECT_API_AUTH_STRING"))
        return None if code == 200 else f"Prefect API answered {code} for work pool {pool!r}"
    return f"unknown TENANTFORM_ROLE {role!r} (gateway, prefect, worker, none)"


def main() -> int:
    role = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TENANTFORM_ROLE", "gateway")
    try:
        problem = check(role)
    except OSError as exc:
        problem = f"{role}: {exc}"
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
