"""JSON log lines carrying the run and the client, so one request can be followed across
the gateway, the worker and the flow-run process (``grep '"run_id": "<id>"'`` over all
three logs). The gateway binds the fields around what it does for a run; in a flow-run
process they come from the run's own parameters."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

LogFormat = Literal["json", "text"]
PREFECT_LOGGING_CONFIG = Path(__file__).with_name("logging.yml")
TEXT_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
FIELDS = ("run_id", "client_id", "flow_run_id", "task_run_id", "flow_run_name", "task_run_name")

_bound: ContextVar[dict[str, str]] = ContextVar("tenantform_log_fields", default={})  # noqa: B039


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Every line logged inside carries these fields."""
    token = _bound.set({**_bound.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _bound.reset(token)


def _flow_run_fields() -> dict[str, str]:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    params = context.flow_run.parameters.get("params") if context and context.flow_run else None
    if not isinstance(params, dict):
        return {}
    return {k: str(params[k]) for k in ("run_id", "client_id") if params.get(k)}


class RunFields(logging.Filter):
    """Adds the bound run and client (or the flow run's own) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _bound.get() or _flow_run_fields()
        for key, value in fields.items():
            if not getattr(record, key, None):
                setattr(record, key, value)
        return True


class JsonLines(logging.Formatter):
    """One compact JSON object per line; only the fields a reader follows a run by."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value:
                line[key] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def prefect_logging_env(log_format: LogFormat) -> dict[str, str]:
    """What a worker's environment needs for its runs' console lines to be JSON."""
    return {"PREFECT_LOGGING_SETTINGS_PATH": str(PREFECT_LOGGING_CONFIG)} if log_format == "json" else {}


def configure(log_format: LogFormat) -> None:
    """The gateway's logging: the root logger and uvicorn's, one format."""
    handler = logging.StreamHandler()
    handler.addFilter(RunFields())
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, logging.StreamHandler) or _kept(h)]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect call otherwise


def _kept(handler: logging.Handler) -> bool:
    """pytest's capture handlers are StreamHandlers too: leave them be."""
    return type(handler).__module__.startswith("_pytest")


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger inside a run (the line shows with the run), else the module's."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("tenantform")
