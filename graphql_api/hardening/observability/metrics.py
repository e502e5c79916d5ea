"""Prometheus metrics and the ``/metrics`` endpoint.

Every app has its own :class:`Metrics` with its own ``CollectorRegistry`` (not
prometheus-client's global one), so a process or a test can run several apps.
Counters that live on domain objects (hub mailboxes, the matcher, strategy
runners) are read when scraped, through collector callbacks: the hot paths pay
nothing for them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from weakref import WeakKeyDictionary

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphql_api.hardening.query_limits.document_cache import DocumentCache
from graphql_api.market.source_health import MarketDataHealth
from graphql_api.platform.activity import Activity
from graphql_api.platform.latency import LatencyHistogram
from graphql_api.platform.resilience import BreakerState, CircuitBreaker
from graphql_api.realtime.hub import Hub, Mailbox

log = structlog.get_logger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_COST_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


_MAX_CACHED_CHILDREN = 10_000


class Metrics:
    """Parameters:
    registry: where the metrics register; a fresh one by default.
    max_operation_names: distinct operation-name labels kept; later names are "other"
        (operation names come from clients, and every label value is a time series).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, max_operation_names: int = 500
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._names: set[str] = set()
        self._max_names = max_operation_names
        r = self.registry
        self.operations = Counter(
            "quantgraph_graphql_operations",
            "GraphQL operations by type, name and outcome (ok or the first error code).",
            ["type", "name", "outcome"],
            registry=r,
        )
        self.operation_seconds = Histogram(
            "quantgraph_graphql_operation_duration_seconds",
            "Time from receiving a GraphQL operation to its result (subscriptions: setup).",
            ["type"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.query_cost = Histogram(
            "quantgraph_graphql_query_cost",
            "Computed cost of GraphQL operations.",
            buckets=_COST_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "quantgraph_rate_limit_refusals",
            "Operations refused by a rate limit, by bucket.",
            ["bucket"],
            registry=r,
        )
        self.http_requests = Counter(
            "quantgraph_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "quantgraph_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.websockets = Gauge(
            "quantgraph_websocket_connections", "Open WebSocket connections.", registry=r
        )
        self.subscriptions = Gauge(
            "quantgraph_active_subscriptions", "Running GraphQL subscriptions.", registry=r
        )
        self.db_seconds = Histogram(
            "quantgraph_db_query_duration_seconds",
            "SQL statement latency.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.db_errors = Counter(
            "quantgraph_db_errors", "SQL statements or connections that failed.", registry=r
        )
        self._callbacks = _CallbackCollector()
        self.registry.register(self._callbacks)

    def labelled(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once per label set: prometheus_client
        validates the values and takes a lock on every ``labels`` call, four times
        per request. Our label sets are bounded (routes, operation names, codes);
        the HTTP method is the client's, so the cache stops growing at a limit."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*values)
            if len(self._children) < _MAX_CACHED_CHILDREN:
                self._children[key] = child
        return child

    def operation_name(self, name: str | None) -> str:
        """A bounded label value for a client-chosen operation name."""
        if not name:
            return "anonymous"
        if not _NAME.match(name):
            return "invalid"
        if name not in self._names:
            if len(self._names) >= self._max_names:
                return "other"
            self._names.add(name)
        return name

    # -- read on scrape ------------------------------------------------------

    def track_counter(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Expose a monotonically increasing number kept elsewhere (e.g. ``activity.fills``)."""
        self._callbacks.counters[name] = (documentation, read)

    def track_gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self._callbacks.gauges[name] = (documentation, read)

    def track_document_cache(self, cache: DocumentCache) -> None:
        """Hits and misses of the parsed-document cache, and what it holds."""
        self.track_counter(
            "quantgraph_document_cache_hits",
            "GraphQL documents taken parsed from the document cache.",
            lambda: float(cache.hits),
        )
        self.track_counter(
            "quantgraph_document_cache_misses",
            "GraphQL documents parsed because the document cache did not have them.",
            lambda: float(cache.misses),
        )
        self.track_gauge(
            "quantgraph_document_cache_entries",
            "Parsed documents in the document cache.",
            lambda: float(len(cache)),
        )
        self.track_gauge(
            "quantgraph_document_cache_bytes",
            "Total size of the cached documents' text.",
            lambda: float(cache.bytes),
        )

    def track_activity(self, activity: Activity) -> None:
        """Fills, signals and alert firings made by this process (while it leads the
        matcher or an engine), who leads, and how far the matcher is behind the ticks."""
        self.track_counter(
            "quantgraph_matcher_fills",
            "Fills made by this process' paper matcher.",
            lambda: float(activity.fills),
        )
        self.track_counter(
            "quantgraph_strategy_signals",
            "Strategy signals emitted by this process' strategy engine.",
            lambda: float(activity.signals),
        )
        self.track_counter(
            "quantgraph_alert_firings",
            "Alert firings stored by this process' alert engine.",
            lambda: float(activity.alert_firings),
        )
        self.track_counter(
            "quantgraph_webhooks_delivered",
            "Webhook deliveries this process' dispatcher saw answered 2xx.",
            lambda: float(activity.webhooks_delivered),
        )
        self.track_counter(
            "quantgraph_webhooks_dead",
            "Webhook deliveries this process' dispatcher gave up on (the dead letter).",
            lambda: float(activity.webhooks_dead),
        )
        self.track_counter(
            "quantgraph_webhook_attempts_failed",
            "Webhook delivery attempts that failed (non-2xx, timeout, connection error).",
            lambda: float(activity.webhook_attempts_failed),
        )
        self.track_counter(
            "quantgraph_matcher_overflows",
            "Times this process' matcher fell so far behind that its mailbox overflowed: "
            "the ticks in it were skipped and the book resynced.",
            lambda: float(activity.matcher_overflows),
        )
        self._callbacks.families.append(lambda: _activity_families(activity))

    def track_market_data(self, health: MarketDataHealth) -> None:
        """Ticks stored and lost per source, each source's last tick age, batch writes."""
        self._callbacks.families.append(lambda: _market_data_families(health))

    def track_breaker(self, breaker: CircuitBreaker) -> None:
        self._callbacks.breakers[breaker.name] = breaker

    def track_hub(self, hub: Hub) -> None:
        self._callbacks.hub = _HubStats(hub)

    def instrument_engine(self, engine: AsyncEngine) -> Callable[[], None]:
        """Time every SQL statement; returns a function that removes the listeners."""
        sync_engine = engine.sync_engine

        def before(conn: Any, *_args: Any) -> None:
            conn.info.setdefault("quantgraph_started", []).append(time.perf_counter())

        def after(conn: Any, *_args: Any) -> None:
            started = conn.info.get("quantgraph_started")
            if started:
                self.db_seconds.observe(time.perf_counter() - started.pop())

        def failed(context: Any) -> None:
            self.db_errors.inc()
            connection = context.connection
            if connection is not None and connection.info.get("quantgraph_started"):
                connection.info["quantgraph_started"].pop()

        listeners: list[tuple[str, Callable[..., Any]]] = [
            ("before_cursor_execute", before),
            ("after_cursor_execute", after),
            ("handle_error", failed),
        ]
        for name, listener in listeners:
            event.listen(sync_engine, name, listener)

        def remove() -> None:
            for name, listener in listeners:
                if event.contains(sync_engine, name, listener):
                    event.remove(sync_engine, name, listener)

        return remove


class _HubStats:
    """Delivered / conflated / overflowed totals over the hub's mailboxes.

    Mailboxes come and go with subscriptions; each scrape adds what every live
    mailbox counted since the previous scrape, so the totals only grow. What a
    mailbox counted after the last scrape before it closed is not seen.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.seen: WeakKeyDictionary[Mailbox, tuple[int, int, bool]] = WeakKeyDictionary()
        self.delivered = 0
        self.conflated = 0
        self.overflowed = 0

    def sample(self) -> tuple[int, int]:
        channels = self.hub.channel_count
        mailboxes = self.hub.mailboxes()
        for mailbox in mailboxes:
            delivered, conflated, overflowed = self.seen.get(mailbox, (0, 0, False))
            self.delivered += mailbox.delivered - delivered
            self.conflated += mailbox.conflated - conflated
            if mailbox.overflowed and not overflowed:
                self.overflowed += 1
            self.seen[mailbox] = (mailbox.delivered, mailbox.conflated, mailbox.overflowed)
        return channels, len(mailboxes)


class _CallbackCollector:
    def __init__(self) -> None:
        self.counters: dict[str, tuple[str, Callable[[], float]]] = {}
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.hub: _HubStats | None = None
        # Producers of whole (labelled or histogram) families, read at scrape time.
        self.families: list[Callable[[], Iterable[Metric]]] = []

    def describe(self) -> Iterable[Metric]:
        return []  # collected lazily; nothing to check for duplicates at registration

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, read) in self.counters.items():
            yield CounterMetricFamily(name, documentation, value=_read(read))
        for name, (documentation, read) in self.gauges.items():
            yield GaugeMetricFamily(name, documentation, value=_read(read))
        if self.breakers:
            state = GaugeMetricFamily(
                "quantgraph_circuit_open",
                "1 while a dependency's circuit breaker refuses calls (open or half-open).",
                labels=["service"],
            )
            for name, breaker in self.breakers.items():
                state.add_metric([name], float(breaker.state is not BreakerState.CLOSED))
            yield state
        if self.hub is not None:
            channels, subscribers = self.hub.sample()
            yield GaugeMetricFamily(
                "quantgraph_hub_channels",
                "Broadcast channels this process listens to.",
                value=channels,
            )
            yield GaugeMetricFamily(
                "quantgraph_hub_subscribers",
                "Hub mailboxes (in-process subscribers).",
                value=subscribers,
            )
            messages = CounterMetricFamily(
                "quantgraph_hub_messages",
                "Hub messages by fate: delivered to a subscriber, or conflated (superseded "
                "by a newer one for the same key before it was read).",
                labels=["fate"],
            )
            messages.add_metric(["delivered"], self.hub.delivered)
            messages.add_metric(["conflated"], self.hub.conflated)
            yield messages
            yield CounterMetricFamily(
                "quantgraph_hub_overflows",
                "Lossless subscriptions closed because they fell too far behind "
                "(events are never dropped silently).",
                value=self.hub.overflowed,
            )
        for produce in self.families:
            try:
                families = list(produce())
            except Exception:  # a broken producer must not break the whole scrape
                log.exception("metric family callback failed")
                continue
            yield from families


def _activity_families(activity: Activity) -> Iterator[Metric]:
    leaders = GaugeMetricFamily(
        "quantgraph_leader",
        "1 while this process leads the cluster singleton (matcher, strategy engine).",
        labels=["singleton"],
    )
    for name, leader in sorted(activity.leaders.items()):
        leaders.add_metric([name], float(leader.is_leader))
    yield leaders
    # With MATCHER_SHARDS > 1 a process may lead several shards: the worst of them.
    shards = activity.all_matcher_progress()
    now = time.monotonic()
    yield GaugeMetricFamily(
        "quantgraph_matcher_lag_seconds",
        "How long the oldest tick (or new order) not yet processed by this process' "
        "matcher has waited since it reached the process; 0 when caught up or not leading "
        "(the most behind of the shards it leads).",
        value=max(progress.lag(now) for progress in shards),
    )
    yield GaugeMetricFamily(
        "quantgraph_matcher_idle_seconds",
        "Seconds since this process' matcher last took a tick or new order from the bus "
        "(since it started leading, before the first); 0 when not leading (the longest "
        "of the shards it leads).",
        value=max(progress.idle(now) for progress in shards),
    )
    yield GaugeMetricFamily(
        "quantgraph_matcher_backlog",
        "Ticks and new orders received and not yet processed by this process' matcher "
        "(all the shards it leads).",
        value=sum(progress.waiting() for progress in shards),
    )
    yield _histogram(
        "quantgraph_matcher_fill_latency_seconds",
        "From a tick's arrival in this process to the commit of a fill it made "
        "(mailbox wait, matching and the fill's transaction).",
        activity.fill_latency,
    )


def _market_data_families(health: MarketDataHealth) -> Iterator[Metric]:
    now = time.monotonic()
    stored = CounterMetricFamily(
        "quantgraph_market_data_ticks",
        "Ticks stored by this process, by source (simulated, replay, binance, ingestTicks).",
        labels=["source"],
    )
    failed = CounterMetricFamily(
        "quantgraph_market_data_tick_failures",
        "Ticks lost because their batch write failed (their writers were told), by source.",
        labels=["source"],
    )
    age = GaugeMetricFamily(
        "quantgraph_market_data_last_tick_age_seconds",
        "Seconds since this process last stored a tick from the source (since it was "
        "expected, before its first tick); only sources expected to run here.",
        labels=["source"],
    )
    up = GaugeMetricFamily(
        "quantgraph_market_data_source_up",
        "1 while a supervised market-data source (MARKET_FEED) runs in this process, 0 while "
        "it reconnects, its circuit is open, or it failed; absent once it ended (a replay) "
        "and on processes that do not lead it.",
        labels=["source"],
    )
    restarts = CounterMetricFamily(
        "quantgraph_market_data_source_restarts",
        "Times a supervised market-data source failed and was restarted (reconnects).",
        labels=["source"],
    )
    for source, counts in health.sources.items():
        if counts.state is not None:
            restarts.add_metric([source.value], counts.restarts)
            if counts.state != "ended":
                up.add_metric([source.value], 1 if counts.state == "running" else 0)
        stored.add_metric([source.value], counts.stored)
        failed.add_metric([source.value], counts.failed)
        seconds = counts.age(now)
        if seconds is not None:
            age.add_metric([source.value], seconds)
    yield stored
    yield failed
    yield age
    yield up
    yield restarts
    yield CounterMetricFamily(
        "quantgraph_tick_batch_failures",
        "Tick batch writes (one atomic write of a group of calls) that failed.",
        value=health.failed_batches,
    )
    yield _histogram(
        "quantgraph_tick_batch_write_seconds",
        "Time of one atomic tick batch write to the tick store.",
        health.batch_seconds,
    )


def _histogram(name: str, documentation: str, histogram: LatencyHistogram) -> Metric:
    buckets = [
        ("+Inf" if bound == float("inf") else repr(bound), count)
        for bound, count in histogram.cumulative()
    ]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.sum)


def _read(read: Callable[[], float]) -> float:
    try:
        return float(read())
    except Exception:  # a broken callback must not break the whole scrape
        log.exception("metric callback failed")
        return float("nan")


# -- HTTP -----------------------------------------------------------------------


class MetricsMiddleware:
    """HTTP requests by route and status, and open WebSocket connections.

    Routes are the app's own paths (``/graphql``, ``/metrics``…); anything else is
    ``other``, so scanners cannot grow the label set.
    """

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, routes: Iterable[str] = ("/graphql",)
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in self.routes else "other"
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            metrics = self.metrics
            metrics.labelled(metrics.http_requests, scope["method"], route, str(status)).inc()
            metrics.labelled(metrics.http_seconds, route).observe(time.perf_counter() - started)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def observe(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                self.metrics.websockets.inc()
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            if accepted:
                self.metrics.websockets.dec()


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Any]:
    async def endpoint(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return endpoint
