"""Terraform's machine-readable UI (``-json``, ui 0.1.0) parsed into typed results."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field


class Diagnostic(BaseModel):
    severity: Literal["error", "warning"]
    summary: str
    detail: str = ""
    address: str | None = None

    def one_line(self) -> str:
        detail = " ".join(self.detail.split())
        where = f" ({self.address})" if self.address else ""
        return f"{self.summary}{where}" + (f": {detail}" if detail else "")


class ChangeSummary(BaseModel):
    add: int = 0
    change: int = 0
    remove: int = 0
    operation: str = "plan"


class OutputValue(BaseModel):
    sensitive: bool = False
    value: Any = None


class ApplyProgress(BaseModel):
    """Resources done of planned while Terraform applies (or destroys)."""

    command: str = Field(description="apply or destroy.")
    planned: int = Field(description="Resources the plan changes.")
    done: int = Field(description="Of those, the ones Terraform has finished.")

    @property
    def percent(self) -> float:
        return 100.0 if self.planned == 0 else round(100.0 * min(self.done, self.planned) / self.planned, 1)


class ApplyCounter:
    """Counts from ``planned_change`` and ``apply_complete`` events, by address: a replace
    completes twice (a delete and a create) but is one planned resource."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.started = False
        """True from the first ``apply_start``: every change is planned by then."""
        self._needed: dict[str, int] = {}
        self._completed: dict[str, int] = {}

    def plan(self, address: str, action: str) -> None:
        self._needed[address] = 2 if action == "replace" else 1

    def start(self) -> None:
        self.started = True

    def complete(self, address: str) -> None:
        self._completed[address] = self._completed.get(address, 0) + 1

    @property
    def progress(self) -> ApplyProgress:
        done = sum(1 for a, n in self._needed.items() if self._completed.get(a, 0) >= n)
        return ApplyProgress(command=self.command, planned=len(self._needed), done=done)


class CommandResult(BaseModel):
    """What one Terraform command did, from its event stream."""

    command: str
    exit_code: int
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    change_summary: ChangeSummary | None = None
    drift: list[str] = Field(default_factory=list, description="Addresses changed outside Terraform.")
    planned: list[str] = Field(default_factory=list, description="'action address' per change.")
    outputs: dict[str, OutputValue] = Field(default_factory=dict)
    duration_seconds: float = 0.0

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


class EventStream:
    """Feeds on lines of ``-json`` output; non-JSON lines (init, crashes) are kept as text."""

    def __init__(self, command: str) -> None:
        self.result = CommandResult(command=command, exit_code=-1)
        self.text_lines: list[str] = []
        self.applying = ApplyCounter(command)

    def feed(self, line: str) -> str:
        """Consume one line, returning the human message to log."""
        line = line.rstrip("\n")
        if not line.startswith("{"):
            if line.strip():
                self.text_lines.append(line)
            return line
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            self.text_lines.append(line)
            return line
        self._absorb(event)
        return str(event.get("@message", line))

    def _absorb(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        result = self.result
        if kind == "diagnostic":
            diag = event.get("diagnostic", {})
            result.diagnostics.append(
                Diagnostic(
                    severity="error" if diag.get("severity") == "error" else "warning",
                    summary=diag.get("summary", ""),
                    detail=diag.get("detail", ""),
                    address=diag.get("address"),
                )
            )
        elif kind == "change_summary":
            result.change_summary = ChangeSummary.model_validate(event.get("changes", {}))
        elif kind == "resource_drift":
            result.drift.append(event.get("change", {}).get("resource", {}).get("addr", "?"))
        elif kind == "planned_change":
            change = event.get("change", {})
            addr = change.get("resource", {}).get("addr", "?")
            result.planned.append(f"{change.get('action', '?')} {addr}")
            self.applying.plan(addr, change.get("action", "?"))
        elif kind == "apply_start":
            self.applying.start()
        elif kind == "apply_complete":
            self.applying.complete(event.get("hook", {}).get("resource", {}).get("addr", "?"))
        elif kind == "outputs":
            result.outputs = {
                name: OutputValue.model_validate(value) for name, value in event.get("outputs", {}).items()
            }


def parse_stream(command: str, lines: list[str], exit_code: int = 0) -> CommandResult:
    """Parse a recorded stream (used by tests and by callers with captured output)."""
    stream = EventStream(command)
    for line in lines:
        stream.feed(line)
    stream.result.exit_code = exit_code
    return stream.result


def parse_outputs(text: str) -> dict[str, OutputValue]:
    """``terraform output -json``."""
    raw = json.loads(text or "{}")
    return {name: OutputValue.model_validate(value) for name, value in raw.items()}
