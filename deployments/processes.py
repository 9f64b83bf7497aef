"""Child processes of the launcher: each under a watchdog that ends it with its descendants
(a worker's flow-run processes included) when asked, or when the launcher dies however it
dies; a pid file that lets the next start find a stack left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from deployments.lifeline import descendants


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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


_LIFELINE = Path(__file__).with_name("lifeline.py")
_lifeline: tuple[int, int] | None = None


def _lifeline_fd() -> int:
    """The read end of this launcher's lifeline pipe. Only this process holds the write end
    (pipes are close-on-exec), so each watchdog reads EOF the moment the launcher is gone,
    however it died."""
    global _lifeline
    if _lifeline is None:
        _lifeline = os.pipe()
    return _lifeline[0]


WRAPPERS = frozenset({"uv", "make"})
"""Parents that only wrap a launcher (``make up`` runs ``uv run tenantform up``): a
launcher stops when one of them dies, as it would with its terminal. A launcher started
from a shell (``nohup tenantform up &``) outlives the shell as asked."""


def stop_with_wrapper() -> None:
    """SIGTERM this process when its parent dies, if the parent is only a wrapper; called
    by a launcher before it starts anything (Linux; elsewhere a no-op)."""
    try:
        parent = Path(f"/proc/{os.getppid()}/comm").read_text().strip()
    except OSError:
        return
    if parent in WRAPPERS:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def starttime(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): a pid and this name one process."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class PidFile:
    """``<data dir>/up.pid``: the launcher and its children, each with its start time so a
    pid reused after a reboot is never taken for ours."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, children: list[Child]) -> None:
        entries = [{"name": "launcher", "pid": os.getpid(), "start": starttime(os.getpid())}]
        for child in children:
            entries += [{"name": child.name, "pid": p, "start": starttime(p)} for p in child.pids]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def left_behind(self) -> list[tuple[str, int]]:
        """Recorded processes still running as the same processes."""
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [
            (str(e["name"]), int(e["pid"]))
            for e in entries
            if isinstance(e, dict) and e.get("start") is not None and starttime(int(e["pid"])) == e["start"]
        ]

    def end_left_behind(self, grace: float = 5.0) -> list[tuple[str, int]]:
        """End a stack a dead launcher left (SIGTERM, then SIGKILL); refuse a live one."""
        found = self.left_behind()
        launcher = [pid for name, pid in found if name == "launcher"]
        if launcher:
            raise StackRunning(
                f"tenantform up (pid {launcher[0]}) is already running on this data dir; "
                f"stop it first (kill {launcher[0]})"
            )
        recorded = {pid for _, pid in found}
        found += [
            (f"{name}'s child", d) for name, pid in found for d in descendants(pid) if d not in recorded
        ]
        for _, pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(alive(p) for _, p in found) and time.monotonic() < deadline:
            time.sleep(0.1)
        for _, pid in found:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while any(alive(p) for _, p in found) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.remove()
        return found


class StackRunning(RuntimeError):
    pass


class Child:
    """One process the launcher starts, under a watchdog (``lifeline.py``) that ends it and
    everything it started when asked, when it exits, or when the launcher dies."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        first: signal.Signals = signal.SIGTERM,
        grace: float = 5.0,
        linger: bool = False,
    ) -> None:
        self.name = name
        self.grace = grace
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        fd = _lifeline_fd()
        watchdog = [sys.executable, "-I", str(_LIFELINE), "--fd", str(fd), "--parent", str(os.getpid())]
        watchdog += ["--first", first.name, "--grace", str(grace), *(["--linger"] if linger else [])]
        watchdog += ["--", *argv]
        self.proc = subprocess.Popen(
            watchdog,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(fd,),
        )

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def pids(self) -> list[int]:
        """The watchdog and every process below it."""
        return [self.proc.pid, *descendants(self.proc.pid)]

    def ask_to_stop(self) -> None:
        """The watchdog signals the command, waits its grace, then ends what is left."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float | None = None) -> None:
        """Ask, wait for the watchdog, and SIGKILL whatever is still there after ``timeout``."""
        family = self.pids
        self.ask_to_stop()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=self.grace + 2 if timeout is None else timeout)
        for pid in [*family, *descendants(self.proc.pid)]:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 3
        while any(alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=3)
        self._log.close()


def stop_all(children: list[Child], budget: float) -> None:
    """Stop several children at once within ``budget`` seconds in all."""
    deadline = time.monotonic() + budget
    for child in children:
        child.ask_to_stop()
    for child in children:
        child.stop(timeout=max(0.1, deadline - time.monotonic()))
