"""Child processes of the launcher: started in their own process group, stopped with
their descendants (a worker's flow-run processes included), and checked to be gone."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class PortTaken(RuntimeError):
    pass


def with_project_python(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this interpreter's bin directory first on PATH: workers start flow runs
    with ``python -m prefect.engine`` (prefect.yaml), which must be the project's python."""
    return {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])}


def ensure_free(host: str, port: int, what: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortTaken(
                f"port {port} on {host} is already in use; {what} cannot start there "
                f"(pick another with the matching --*port option)"
            ) from None


def descendants(pid: int) -> list[int]:
    """All processes below ``pid``, read from /proc (no extra dependency)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, first: signal.Signals = signal.SIGTERM, grace: float = 15.0) -> None:
        """Signal the group, wait, then SIGKILL the group and any descendant that left it."""
        family = [self.proc.pid, *descendants(self.proc.pid)]
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, first)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        for pid in family:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.proc.wait(timeout=5)
        self._log.close()
