"""Runs Terraform commands in a workspace, streaming redacted lines to a log file and
the run logger, and turning failures into typed errors.

Why not prefect-shell's ``ShellOperation``: it runs a shell command line (we must never
build one from user input), drops stderr, and logs lines before we could redact them or
parse the ``-json`` events. ``subprocess`` without a shell gives us all three.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flows.terraform.binary import TerraformBinary
from flows.terraform.errors import classify
from flows.terraform.events import ApplyProgress, CommandResult, EventStream, OutputValue, parse_outputs
from flows.terraform.redact import Redactor, sensitive_values
from flows.terraform.workspace import Workspace

LogFn = Callable[[str], None]
ProgressFn = Callable[[ApplyProgress], None]
"""Called on every line once Terraform applies; it decides how often to pass it on."""


class Terraform:
    def __init__(
        self,
        binary: TerraformBinary,
        workspace: Workspace,
        env: dict[str, str],
        *,
        redactor: Redactor | None = None,
        log: LogFn | None = None,
        lock_timeout: str = "60s",
        backend_config: dict[str, str] | None = None,
        interrupt_grace: float = 120.0,
        progress: ProgressFn | None = None,
        after_init: Callable[[], None] | None = None,
    ) -> None:
        self.binary = binary
        self.after_init = after_init
        self.workspace = workspace
        self.env = env
        self.redact = redactor or Redactor()
        self.log = log or (lambda _line: None)
        self.lock_timeout = lock_timeout
        self.backend_config = backend_config or {}
        self.interrupt_grace = interrupt_grace
        self.progress = progress

    # Commands ----------------------------------------------------------------------------
    def init(self) -> CommandResult:
        # `init` has no -json in 1.0.3: its lines are kept as text and classified from there.
        done = self._run(
            "init",
            ["-input=false", "-no-color", "-reconfigure"]
            + [f"-backend-config={k}={v}" for k, v in self.backend_config.items()],
            log_name="init",
        )
        if self.after_init is not None:
            self.after_init()
        return done

    def apply(self) -> CommandResult:
        return self._run(
            "apply",
            ["-auto-approve", "-input=false", "-json", f"-lock-timeout={self.lock_timeout}"],
            log_name="apply",
        )

    def plan(self, *, refresh_only: bool = False, out: Path | None = None) -> CommandResult:
        """Exit code 2 means changes (or drift): a result, not a failure. With ``out`` the
        plan is saved, bound to the state it was made against."""
        args = ["-input=false", "-json", "-detailed-exitcode", f"-lock-timeout={self.lock_timeout}"]
        if refresh_only:
            args.append("-refresh-only")
        if out is not None:
            args.append(f"-out={out}")
        return self._run("plan", args, log_name="plan", ok_codes=(0, 2))

    def apply_plan(self, plan_file: Path) -> CommandResult:
        """Apply exactly a saved plan; Terraform refuses it if the state moved since."""
        return self._run(
            "apply",
            ["-input=false", "-json", f"-lock-timeout={self.lock_timeout}", str(plan_file)],
            log_name="apply",
        )

    def show_json(self, plan_file: Path) -> dict[str, Any]:
        """A saved plan as JSON (``terraform show -json``), for the policies; never logged:
        it may hold values Terraform marks sensitive."""
        plan: dict[str, Any] = json.loads(self._read("show", ["-json", str(plan_file)]))
        return plan

    def _read(self, command: str, args: list[str]) -> str:
        """The stdout of a command that answers in JSON; never logged (it may hold secrets)."""
        proc = subprocess.run(
            self._argv(command, args), env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        if proc.returncode != 0:
            raise classify([self.redact(proc.stderr)], command=command, exit_code=proc.returncode)
        return proc.stdout

    def destroy(self) -> CommandResult:
        return self._run(
            "destroy",
            ["-auto-approve", "-input=false", "-json", f"-lock-timeout={self.lock_timeout}"],
            log_name="destroy",
        )

    def force_unlock(self, lock_id: str) -> CommandResult:
        """Only for a lock whose holder is known to be gone (``flows.locks``)."""
        return self._run("force-unlock", ["-force", "-no-color", lock_id], log_name="unlock")

    def output(self) -> dict[str, OutputValue]:
        """Outputs in clear (never logged); sensitive ones are added to the redactor."""
        outputs = parse_outputs(self._read("output", ["-json"]))
        self.redact.add(s for o in outputs.values() if o.sensitive for s in sensitive_values(o.value))
        return outputs

    # Plumbing ----------------------------------------------------------------------------
    def _argv(self, command: str, args: Sequence[str]) -> list[str]:
        return [str(self.binary.path), f"-chdir={self.workspace.path}", command, *args]

    def _run(
        self, command: str, args: Sequence[str], *, log_name: str, ok_codes: tuple[int, ...] = (0,)
    ) -> CommandResult:
        stream = EventStream(command)
        log_path: Path = self.workspace.log_path(log_name)
        started = time.monotonic()
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", buffering=1) as log_file:  # line by line: a tail sees it live
            log_file.write(self.redact(f"# {self.binary} {command} {' '.join(args)}") + "\n")
            with subprocess.Popen(
                self._argv(command, args),
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                # Its own session: a signal to the flow run's process group (how the worker
                # cancels) reaches Terraform once, from ``interrupt``; a second one would
                # make it exit at once, state unsaved.
                start_new_session=True,
            ) as proc:
                assert proc.stdout is not None
                try:
                    for raw in proc.stdout:
                        line = self.redact(raw.rstrip("\n"))
                        log_file.write(line + "\n")
                        message = self.redact(stream.feed(line))
                        if message.strip():
                            self.log(message)
                        if self.progress is not None and stream.applying.started:
                            self.progress(stream.applying.progress)
                    exit_code = proc.wait()
                except BaseException:
                    # Cancelled or stopped: let Terraform stop cleanly, so it writes what it
                    # did to the state and releases the state lock, before we go. What it
                    # says meanwhile ("Interrupt received", ...) still goes to the log.
                    def keep(raw: str) -> None:
                        log_file.write(self.redact(raw.rstrip("\n")) + "\n")

                    interrupt(proc, self.interrupt_grace, keep)
                    raise
        result = stream.result
        result.exit_code = exit_code
        result.duration_seconds = round(time.monotonic() - started, 3)
        if exit_code not in ok_codes:
            messages = [d.one_line() for d in result.errors] or _error_lines(stream.text_lines)
            raise classify(messages, command=command, exit_code=exit_code)
        return result


def interrupt(proc: subprocess.Popen[str], grace: float, drain: LogFn | None = None) -> None:
    """What Ctrl-C does: SIGINT to Terraform's process group (its providers included) is
    its graceful stop: the state is saved and the lock released. SIGKILL only when it will
    not stop within ``grace``. ``drain`` gets the lines it prints until it exits (unread,
    they would be lost, and a full pipe would block it)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    if drain is None or proc.stdout is None:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
        return
    killer = threading.Timer(grace, _kill_group, (proc,))
    killer.daemon = True
    killer.start()
    try:
        for raw in proc.stdout:  # ends when Terraform exits (or is killed)
            drain(raw)
        proc.wait()
    finally:
        killer.cancel()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _error_lines(lines: list[str]) -> list[str]:
    """For commands without -json: the lines from the first 'Error:' on."""
    for i, line in enumerate(lines):
        if "Error" in line:
            return [" ".join(" ".join(lines[i : i + 4]).split())]
    return lines[-3:]
