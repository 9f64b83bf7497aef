"""The process worker's ``command`` (``python -m deployments.warm.launch``): hands this
flow run to the warm process (``server.py``) instead of starting a new interpreter that
imports Prefect again.

Standard library only, so it starts in tens of milliseconds. It sends its argv,
environment and working directory over the warm process's Unix socket, with its stdin,
stdout and stderr attached (SCM_RIGHTS), then stands in for the run's process: the worker's
signals are forwarded to the run, and it exits as the run did (the same code, or killed by
the same signal), so Prefect's crash detection and cancellation see what they would see
with ``python -m prefect.engine``. If it dies, the run is killed (its connection drops).
With no warm process answering it execs ``python -m prefect.engine``: slower, never broken.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path
from types import FrameType

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SOCKET_ENV = "TENANTFORM_WARM_SOCKET"
WAIT_ENV = "TENANTFORM_WARM_WAIT_SECONDS"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
HELLO = b"hello\n"
MAX_REQUEST = 4 << 20


def socket_path(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """``TENANTFORM_WARM_SOCKET``, else ``warm/engine.sock`` in the data dir (a relative
    data dir is taken from the project directory, as flows/settings.py does)."""
    if explicit := env.get(SOCKET_ENV):
        return Path(explicit)
    data = Path(env.get("TENANTFORM_DATA_DIR") or ".tenantform")
    return (data if data.is_absolute() else PROJECT_ROOT / data) / "warm" / "engine.sock"


def sockaddr(path: Path) -> tuple[str, int | None]:
    """An address short enough for AF_UNIX (108 bytes): long paths go through an open
    descriptor of their directory. Returns the address and that descriptor, if any."""
    if len(os.fsencode(path)) < 100:
        return str(path), None
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{dir_fd}/{path.name}", dir_fd


def encode_request(argv: list[str], env: dict[str, str], cwd: str) -> bytes:
    body = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode()
    return struct.pack("!I", len(body)) + body


def fallback(reason: str) -> None:
    """The stock start, in this process (the worker's pid stays the run's pid)."""
    if os.environ.get("TENANTFORM_WARM_DEBUG"):
        print(f"warm launcher: {reason}; starting python -m prefect.engine", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])  # noqa: S606


def connect() -> socket.socket | None:
    """A connection the warm process has greeted, or None (nothing listening, or it did not
    greet in time: it may be restarting; no request was sent, so nothing runs twice)."""
    address, dir_fd = sockaddr(socket_path())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(float(os.environ.get(WAIT_ENV) or 5))
        sock.connect(address)
        greeting = b""
        while not greeting.endswith(b"\n") and len(greeting) < len(HELLO):
            chunk = sock.recv(len(HELLO) - len(greeting))
            if not chunk:
                break
            greeting += chunk
        if greeting != HELLO:
            sock.close()
            return None
        sock.settimeout(None)
        return sock
    except OSError:
        sock.close()
        return None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def relay(sock: socket.socket) -> int:
    """Forward signals until the warm process reports how the run ended."""

    def _forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(f"signal {signum}\n".encode())

    for signum in FORWARDED:
        signal.signal(signum, _forward)
    reader = sock.makefile("rb")
    for raw in reader:
        word, _, value = raw.decode().strip().partition(" ")
        if word == "exit":
            return int(value)
        if word == "signal":
            return -int(value)
    print("warm launcher: the warm process dropped this run", file=sys.stderr, flush=True)
    return 1


def exit_like(status: int) -> None:
    """Exit with the run's code, or die of the signal that killed it."""
    sys.stdout.flush()
    sys.stderr.flush()
    if status < 0:
        signum = -status
        if signum != signal.SIGKILL and signum != signal.SIGSTOP:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
        status = 128 + signum
    os._exit(status)


def main() -> None:
    sock = connect()
    if sock is None:
        fallback("no warm process answered")
        return
    request = encode_request(sys.argv[1:], dict(os.environ), os.getcwd())
    try:
        socket.send_fds(sock, [request[:4]], [0, 1, 2])
        sock.sendall(request[4:])
    except OSError as exc:
        # The request may be half-sent: the warm process runs nothing for a partial one.
        sock.close()
        fallback(f"the warm process went away ({exc})")
        return
    exit_like(relay(sock))


if __name__ == "__main__":
    main()
