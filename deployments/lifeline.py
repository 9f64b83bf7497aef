"""A watchdog between a launcher (``tenantform up``/``worker``) and each process it starts.

Run as a script, standard library only (it starts in milliseconds):
``python lifeline.py --fd N --first INT --grace 5 -- COMMAND...``. It starts COMMAND in
a process group of its own and stays its parent. It is a child subreaper, so whatever
COMMAND starts and abandons (a Prefect server's uvicorn, a worker's flow runs, the warm
process's supervisors in their own sessions) is re-parented to it instead of to init.

It ends COMMAND and everything below it when any of these happens:
- the launcher asks (SIGTERM, SIGINT or SIGHUP to this process);
- the launcher is gone however it died (SIGKILL, the OOM killer): the lifeline pipe ``--fd``
  whose only write end the launcher holds reads EOF, and ``getppid()`` changes;
- COMMAND exits on its own: what it left behind is ended too, or with ``--linger`` (the
  warm process, whose runs outlive its restart) left to finish first.

Ending is: the ``--first`` signal to COMMAND's group, up to ``--grace`` seconds for it to
go, SIGTERM then SIGKILL to every descendant still there. The exit code is COMMAND's.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
POLL = 0.5


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def end(child: subprocess.Popen[bytes], first: int, grace: float) -> int:
    """Ask the child to stop, wait up to ``grace``, then end every descendant."""
    deadline = time.monotonic() + grace
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, first)
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    rest = descendants(os.getpid())
    if rest:  # the child's own leftovers get a short chance to save what they hold
        _signal_all(rest, signal.SIGTERM)
        short = min(deadline, time.monotonic() + 1.0)
        while time.monotonic() < short and descendants(os.getpid()):
            _reap_orphans(child.pid)
            time.sleep(0.05)
    for _ in range(100):
        rest = descendants(os.getpid())
        if not rest:
            break
        _signal_all(rest, signal.SIGKILL)
        _reap_orphans(child.pid)
        time.sleep(0.02)
    code = child.wait()
    _reap_orphans(child.pid)
    return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lifeline")
    parser.add_argument("--fd", type=int, required=True, help="read end of the lifeline pipe")
    parser.add_argument("--parent", type=int, required=True, help="the launcher's pid")
    parser.add_argument("--first", default="TERM", help="signal that asks the command to stop")
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument(
        "--linger", action="store_true", help="when the command exits, let what it started finish"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    if os.getppid() != args.parent:  # the launcher died before we got here
        return 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    asked: list[int] = []

    def _on_signal(signum: int, _frame: object) -> None:
        asked.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select when the child exits

    child = subprocess.Popen(command, process_group=0)
    first = int(getattr(signal, f"SIG{args.first.upper().removeprefix('SIG')}"))
    while not asked and os.getppid() == args.parent:
        if child.poll() is not None and not (args.linger and descendants(os.getpid())):
            break
        ready, _, _ = select.select([args.fd, wake_r], [], [], POLL)
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
        if args.fd in ready and not os.read(args.fd, 512):
            break  # EOF: the launcher is gone
        _reap_orphans(child.pid)
    return end(child, first, args.grace)


def _reap_orphans(child_pid: int) -> None:
    """Collect exited orphans (this process is their subreaper), leaving the child's own
    status to Popen."""
    for pid in [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]:
        if pid == child_pid:
            continue
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2] == [
                "Z",
                str(os.getpid()),
            ]:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
        except (OSError, IndexError):
            continue


if __name__ == "__main__":
    sys.exit(main())
