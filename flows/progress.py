"""Terraform's apply progress as a Prefect progress artifact: the Prefect UI shows it and
the gateway reads it back for ``GET /api/runs/{run_id}``.

Terraform prints a line per resource event (and one every 10 s per resource still in
flight); an API call per line would slow the run and load the server, so the artifact is
written at most once per ``interval`` seconds, and once more when the command ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from uuid import UUID

from flows.contract import describe_progress, progress_key
from flows.logs import run_logger
from flows.terraform.events import ApplyProgress


class ProgressArtifact:
    """One artifact per Terraform command, created when it starts applying. A failed
    write is logged and skipped: progress must never stop Terraform mid-apply."""

    def __init__(
        self, client_id: str, *, interval: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.key = progress_key(client_id)
        self.interval = interval
        self.clock = clock
        self._id: UUID | None = None
        self._latest: ApplyProgress | None = None
        self._sent: ApplyProgress | None = None
        self._sent_at = 0.0
        self.writes = 0

    def __call__(self, progress: ApplyProgress) -> None:
        self._latest = progress
        if progress != self._sent and (self._sent is None or self.clock() - self._sent_at >= self.interval):
            self._write(progress)

    def flush(self) -> None:
        if self._latest is not None and self._latest != self._sent:
            self._write(self._latest)

    def __enter__(self) -> ProgressArtifact:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.flush()

    def _write(self, progress: ApplyProgress) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        description = describe_progress(progress)
        try:
            if self._id is None:
                created = create_progress_artifact(progress.percent, key=self.key, description=description)
                if not isinstance(created, UUID):  # a coroutine: only inside an event loop
                    raise TypeError("progress artifacts are written from synchronous tasks")
                self._id = created
            else:
                update_progress_artifact(self._id, progress.percent, description=description)
        except Exception as exc:  # the artifact is a view; the apply goes on without it
            run_logger().warning("progress artifact not written: %s: %s", type(exc).__name__, exc)
        self._sent, self._sent_at = progress, self.clock()
        self.writes += 1
