"""Prometheus metrics of the gateway, served at ``GET /metrics``.

Request counts and dispatch latency are counted as they happen; runs by operation and
status, the oldest request Prefect has not taken yet, and clients by drift status are
read from the registry at scrape time (a few indexed queries), so they are right after a
restart and the same on every gateway in front of one registry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.registry.db import Registry
from api.registry.models import Client, ClientStatus, Run, RunStatus
from flows.contract import PolicyResult


class RegistryCollector(Collector):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily("tenantform_runs", "Runs in the registry", labels=["operation", "status"])
        drift = GaugeMetricFamily(
            "tenantform_clients_drift", "Live clients by drift status", labels=["drift"]
        )
        oldest = GaugeMetricFamily(
            "tenantform_oldest_accepted_age_seconds", "Age of the oldest request Prefect has not taken yet"
        )
        with self.registry.session() as session:
            for operation, status, count in session.execute(
                select(Run.operation, Run.status, func.count()).group_by(Run.operation, Run.status)
            ):
                runs.add_metric([operation, status], count)
            for status, count in session.execute(
                select(Client.drift_status, func.count())
                .where(Client.status != ClientStatus.destroyed)
                .group_by(Client.drift_status)
            ):
                drift.add_metric([status], count)
            first = session.scalar(select(func.min(Run.created_at)).where(Run.status == RunStatus.accepted))
        if first is not None:
            first = first if first.tzinfo else first.replace(tzinfo=UTC)
            oldest.add_metric([], (datetime.now(UTC) - first).total_seconds())
        else:
            oldest.add_metric([], 0.0)
        yield from (runs, drift, oldest)


class Metrics:
    """Made with the app (the middleware needs it then); the registry joins at start-up."""

    def __init__(self) -> None:
        self.prometheus = CollectorRegistry()
        self.requests = Counter(
            "tenantform_http_requests",
            "HTTP requests by route and status code",
            ["method", "route", "code"],
            registry=self.prometheus,
        )
        self.dispatch_latency = Histogram(
            "tenantform_dispatch_latency_seconds",
            "From accepting a request to Prefect holding its flow run",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.prometheus,
        )

        self.policy_results = Counter(
            "tenantform_policy_results",
            "Policy verdicts on the plans of ended runs, by policy, level and result "
            "(result=deny: the denials per policy)",
            ["policy", "level", "result"],
            registry=self.prometheus,
        )

    def count_policies(self, results: list[PolicyResult]) -> None:
        for r in results:
            self.policy_results.labels(r.policy, r.level.value, r.outcome.value).inc()

    def attach(self, registry: Registry) -> None:
        self.prometheus.register(RegistryCollector(registry))


class RequestCounter:
    """Counts requests by route template and status code. Plain ASGI: Starlette's
    ``BaseHTTPMiddleware`` (``app.middleware("http")``) runs every request through an
    extra task and memory streams, a cost every route paid."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
