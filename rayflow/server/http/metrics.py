"""The server's Prometheus metrics: one registry, what the runner and the routes observe.

Owns ``ServerMetrics`` (its own ``CollectorRegistry``, never the process-global one,
so two servers or a test never share counters) and ``HttpMetricsMiddleware``, a pure
ASGI middleware that times each request under its route template. The one importer of
``prometheus_client``. Labels stay low-cardinality: a workflow name, a state, a cache
tier, a route template (``/v1/runs/{run_id}``, never the raw path); never a run id.
Must not import FastAPI or the control plane: the gauges read plain callbacks at scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rayflow.store.port import ComponentRecord, RunRecord

RUN_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600)
COMPONENT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
log = logging.getLogger("rayflow.server.http")
UNMATCHED = "unmatched"   # the route label of a request no route took (404, or refused before routing)


class _Sources:
    """Gauges read through callbacks at scrape time (runs driven/queued, the store's pool)."""

    def __init__(self) -> None:
        self.in_flight: Callable[[], dict[str, int]] | None = None
        self.pool: Callable[[], dict] | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(read=True)

    def _families(self, read: bool = False) -> list[Metric]:
        driven = GaugeMetricFamily("rayflow_runs_in_flight", "Runs this server is driving now.")
        queued = GaugeMetricFamily("rayflow_runs_queued", "Runs waiting in the store for a server to claim them.")
        pool = GaugeMetricFamily("rayflow_store_pool_connections", "Connections of the run store's pool, by state.",
                                 labels=["state"])
        if read:
            counts = _read(self.in_flight)
            for family, key in ((driven, "runs_driven"), (queued, "runs_queued")):
                if key in counts:
                    family.add_metric([], float(counts[key]))
            for state, n in sorted(_read(self.pool).items()):
                pool.add_metric([str(state)], float(n))
        return [driven, queued, pool]


def _read(source: Callable[[], dict] | None) -> dict:
    """What a gauge's callback says now; {} when there is none or it fails (a scrape never does)."""
    if source is None:
        return {}
    try:
        return dict(source() or {})
    except Exception as exc:  # noqa: BLE001 - the store may be down; the gauge is then absent
        log.warning("a metrics source failed at scrape: %s", type(exc).__name__)
        return {}


class ServerMetrics:
    """What ``/metrics`` shows. Thread-safe (prometheus_client's metrics are)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._sources = _Sources()
        self.registry.register(self._sources)
        self._declare_runs()
        self._declare_server()

    def _declare_runs(self) -> None:
        r, wf = self.registry, ["workflow"]
        self.runs_finished = Counter("rayflow_runs_finished", "Runs that ended, by final state.",
                                     ["workflow", "state"], registry=r)
        self.components_finished = Counter("rayflow_components_finished", "Components of ended runs, by state.",
                                           ["workflow", "state"], registry=r)
        self.run_duration = Histogram("rayflow_run_duration_seconds", "Wall time of ended runs.", wf,
                                      buckets=RUN_BUCKETS, registry=r)
        self.component_duration = Histogram("rayflow_component_duration_seconds",
                                            "Run time of components (last attempt).", wf,
                                            buckets=COMPONENT_BUCKETS, registry=r)
        self.queue_wait = Histogram("rayflow_component_queue_wait_seconds",
                                    "Time components waited between ready and started.", wf,
                                    buckets=QUEUE_BUCKETS, registry=r)
        self.retries = Counter("rayflow_component_retries", "Attempts beyond a component's first.", wf,
                               registry=r)
        self.oom_reruns = Counter("rayflow_oom_reruns", "Components run again with more memory after an OOM kill.",
                                  wf, registry=r)
        self.cache_requests = Counter("rayflow_cache_requests", "Result-cache lookups, by tier and result.",
                                      ["tier", "result"], registry=r)
        kinds = ["workflow", "kind"]
        self.connector_calls = Counter("rayflow_connector_requests",
                                       "Connector components' SQL statements and HTTP requests.", kinds, registry=r)
        self.connector_retries = Counter("rayflow_connector_retries",
                                         "Connector retries of transient failures (inside an attempt).", kinds,
                                         registry=r)
        self.connector_rows = Counter("rayflow_connector_rows", "Rows SQL components read and wrote.",
                                      ["workflow", "direction"], registry=r)
        self.breaker_opened = Counter("rayflow_connector_breaker_opened",
                                      "Times an HTTP component's host circuit opened.", wf, registry=r)

    def _declare_server(self) -> None:
        r = self.registry
        self.checkpoint_bytes = Counter("rayflow_checkpoint_bytes", "Bytes of outputs checkpointed.", registry=r)
        self.checkpoint_seconds = Counter("rayflow_checkpoint_seconds", "Time spent writing checkpoints.",
                                          registry=r)
        self.loop_lag = Gauge("rayflow_event_loop_lag_seconds",
                              "How late the HTTP event loop woke from a 0.5 s sleep, last measured.", registry=r)
        self.http_requests = Counter("rayflow_http_requests", "HTTP requests answered.",
                                     ["method", "route", "status"], registry=r)
        self.http_duration = Histogram("rayflow_http_request_duration_seconds", "Time to answer HTTP requests.",
                                       ["method", "route"], buckets=HTTP_BUCKETS, registry=r)

    # -- what the runner and the server observe -------------------------------------------

    def observe_run(self, run: RunRecord, components: list[ComponentRecord], *,
                    cache: dict[str, Any] | None = None) -> None:
        """Count a run that ended, and each of its components (called once per run)."""
        wf = run.name or "unnamed"
        self.runs_finished.labels(wf, run.status).inc()
        if run.started_at is not None and run.ended_at is not None:
            self.run_duration.labels(wf).observe(max(0.0, run.ended_at - run.started_at))
        for c in components:
            self._observe_component(wf, c)
        for tier, counts in (cache or {}).items():
            self._observe_cache(str(tier), counts or {})

    def _observe_component(self, wf: str, c: ComponentRecord) -> None:
        self.components_finished.labels(wf, c.state).inc()
        if c.duration_s is not None:
            self.component_duration.labels(wf).observe(max(0.0, c.duration_s))
        if c.queued_s is not None:
            self.queue_wait.labels(wf).observe(max(0.0, c.queued_s))
        if c.attempts > 1:
            self.retries.labels(wf).inc(c.attempts - 1)
        reruns = c.outcome.get("oom_reruns", 0) if isinstance(c.outcome, dict) else 0
        if isinstance(reruns, int) and reruns > 0:
            self.oom_reruns.labels(wf).inc(reruns)
        connector = c.outcome.get("connector") if isinstance(c.outcome, dict) else None
        if isinstance(connector, dict):
            self._observe_connector(wf, connector)

    def _observe_connector(self, wf: str, figures: dict[str, Any]) -> None:
        """A connector component's figures (rayflow.core.notes): statements, requests, retries,
        rows, breaker openings."""
        def count(section: dict, key: str) -> float:
            value = section.get(key, 0)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0.0

        for kind, key in (("sql", "statements"), ("http", "requests")):
            section = figures.get(kind)
            if not isinstance(section, dict):
                continue
            if n := count(section, key):
                self.connector_calls.labels(wf, kind).inc(n)
            if n := count(section, "retries"):
                self.connector_retries.labels(wf, kind).inc(n)
            if kind == "sql":
                for direction in ("read", "written"):
                    if n := count(section, f"rows_{direction}"):
                        self.connector_rows.labels(wf, direction).inc(n)
            elif n := count(section, "breaker_opened"):
                self.breaker_opened.labels(wf).inc(n)

    def _observe_cache(self, tier: str, counts: dict[str, Any]) -> None:
        hits, misses = int(counts.get("hits", 0) or 0), int(counts.get("misses", 0) or 0)
        if hits > 0:
            self.cache_requests.labels(tier, "hit").inc(hits)
        if misses > 0:
            self.cache_requests.labels(tier, "miss").inc(misses)

    def observe_checkpoint(self, nbytes: int, seconds: float) -> None:
        self.checkpoint_bytes.inc(max(0, nbytes))
        self.checkpoint_seconds.inc(max(0.0, seconds))

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def set_loop_lag(self, seconds: float) -> None:
        self.loop_lag.set(max(0.0, seconds))

    def set_sources(self, in_flight: Callable[[], dict[str, int]],
                    pool: Callable[[], dict] | None = None) -> None:
        """The callbacks the gauges read at each scrape (``plane.in_flight``, the store's pool)."""
        self._sources.in_flight = in_flight
        self._sources.pool = pool

    @property
    def sourced(self) -> bool:
        """True once ``set_sources`` was called."""
        return self._sources.in_flight is not None

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class HttpMetricsMiddleware:
    """Pure ASGI: counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_counting(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            self.metrics.observe_http(scope["method"], route_template(scope), status[0],
                                      time.perf_counter() - started)


def route_template(scope: dict) -> str:
    """The template of the route that took the request (set in the scope by the router)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
