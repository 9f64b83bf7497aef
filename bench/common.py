"""Shared by the bench scripts: a stack on free ports, percentiles, a side-by-side table."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
from collections.abc import Iterator
from pathlib import Path

from deployments.stack import Stack, StackConfig

PRISTINE_PREFECT = {
    # Prefect's documented defaults, for the baseline column.
    "PREFECT_WORKER_QUERY_SECONDS": "10",
    "PREFECT_WORKER_PREFETCH_SECONDS": "10",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def stack(
    data_dir: Path, *, tuned: bool = True, external_prefect: str | None = None, worker_limit: int = 4
) -> Iterator[Stack]:
    if not tuned:
        os.environ.update(PRISTINE_PREFECT)
    config = StackConfig(
        data_dir=data_dir,
        port=free_port(),
        prefect_port=free_port(),
        prefect_api_url=external_prefect,
        worker_limit=worker_limit,
    )
    running = Stack(config)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)
