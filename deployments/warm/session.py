"""One launcher's connection, in a process forked from the warm process: it takes the
request, forks the run (which becomes exactly ``python -m prefect.engine`` with the
launcher's environment, directory and stdio), forwards the launcher's signals to it,
reports how it ended, and kills it when the launcher's connection drops.

It runs in its own session, so the run outlives the warm process (a restart, a crash)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import runpy
import select
import signal
import socket
import struct
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import NoReturn

from deployments.warm.launch import HELLO, MAX_REQUEST

PR_SET_PDEATHSIG = 1
_STARTED_IN = os.getcwd()
"""``python -m`` put the warm process's start directory first on sys.path; a run's is its own."""


@dataclass
class Request:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    fds: list[int]


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the launcher went away mid-request")
        data += chunk
    return data


def read_request(conn: socket.socket) -> Request:
    head, fds, _flags, _addr = socket.recv_fds(conn, 4, 3)
    try:
        head += _recv_exactly(conn, 4 - len(head)) if head else b""
        if len(head) != 4 or len(fds) != 3:
            raise ConnectionError("no request (the launcher gave up waiting)")
        (size,) = struct.unpack("!I", head)
        if size > MAX_REQUEST:
            raise ValueError(f"request of {size} bytes")
        body = json.loads(_recv_exactly(conn, size))
        argv, env, cwd = body["argv"], body["env"], body["cwd"]
        if not (isinstance(argv, list) and isinstance(env, dict) and isinstance(cwd, str)):
            raise ValueError("malformed request")
        return Request([str(a) for a in argv], {str(k): str(v) for k, v in env.items()}, cwd, fds)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def serve_connection(conn: socket.socket, log: logging.Logger) -> NoReturn:
    """The supervisor: never returns."""
    code = 1
    try:
        os.setsid()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        conn.settimeout(30)
        conn.sendall(HELLO)
        request = read_request(conn)
        conn.settimeout(None)
        code = supervise(conn, request, log)
    except (OSError, ValueError) as exc:
        log.info("warm: connection ended before a run started (%s)", type(exc).__name__)
    finally:
        os._exit(code)


def supervise(conn: socket.socket, request: Request, log: logging.Logger) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        run_engine(conn, request)
    for fd in request.fds:  # the worker's pipes reach EOF when the run and launcher end
        os.close(fd)
    flow_run = request.argv[0] if request.argv else request.env.get("PREFECT__FLOW_RUN_ID", "?")
    log.info("warm: run process %d started for flow run %s", pid, flow_run)
    pidfd = os.pidfd_open(pid)
    buffer = b""
    with contextlib.suppress(OSError):
        conn.sendall(f"pid {pid}\n".encode())
    while True:
        ready, _, _ = select.select([conn.fileno(), pidfd], [], [])
        if pidfd in ready:
            _, status = os.waitpid(pid, 0)
            if os.WIFSIGNALED(status):
                report = f"signal {os.WTERMSIG(status)}\n"
            else:
                report = f"exit {os.waitstatus_to_exitcode(status)}\n"
            log.info("warm: run process %d ended: %s", pid, report.strip())
            with contextlib.suppress(OSError):
                conn.sendall(report.encode())
            return 0
        try:
            chunk = conn.recv(4096)
        except OSError:
            chunk = b""
        if not chunk:
            log.info("warm: launcher of run process %d is gone; killing the run", pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return 0
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            word, _, value = line.decode(errors="replace").partition(" ")
            if word == "signal" and value.isdigit():
                # Not reaped yet, so the pid is still this run's.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, int(value))


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def run_engine(conn: socket.socket, request: Request) -> NoReturn:
    """Becomes ``python -m prefect.engine`` started by the worker: same argv, environment,
    directory and stdio; Prefect's settings and logging rebuilt from that environment."""
    code: int = 1
    interrupted = False
    preloaded: set[str] = set()
    try:
        supervisor = os.getppid()
        os.setpgid(0, 0)
        _die_with_parent()
        if os.getppid() != supervisor:
            os._exit(1)
        for target, fd in enumerate(request.fds):
            os.dup2(fd, target)
        for fd in request.fds:
            if fd > 2:
                os.close(fd)
        conn.close()
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request.cwd)
        if sys.path and sys.path[0] in ("", _STARTED_IN):
            sys.path[0] = request.cwd
        os.environ.clear()
        os.environ.update(request.env)
        sys.argv = ["-m", *request.argv]
        _rebuild_prefect_settings()
        preloaded = set(sys.modules)
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        interrupted = True
    except BaseException:
        traceback.print_exc()
        code = 1
    _finalize()
    _trace_imports(preloaded)
    if interrupted:  # as the interpreter does: die of SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def _rebuild_prefect_settings() -> None:
    import prefect.context
    import prefect.logging.configuration

    from flows.settings import get_settings
    from flows.workflows import workflows

    prefect.context.refresh_global_settings_context()
    prefect.logging.configuration.PROCESS_LOGGING_CONFIG.clear()
    prefect.logging.configuration.setup_logging()
    get_settings.cache_clear()
    workflows.cache_clear()


def _trace_imports(preloaded: set[str]) -> None:
    """With TENANTFORM_WARM_TRACE_IMPORTS=FILE in a run's environment, the modules the run
    still had to import are appended there: candidates for server.PRELOAD."""
    trace = os.environ.get("TENANTFORM_WARM_TRACE_IMPORTS")
    if not trace or not preloaded:
        return
    with contextlib.suppress(OSError), open(trace, "a") as fh:
        fh.writelines(f"{name}\n" for name in sorted(set(sys.modules) - preloaded))


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _finalize() -> None:
    """What the interpreter does on exit: join non-daemon threads, run atexit, flush."""
    with contextlib.suppress(BaseException):
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
