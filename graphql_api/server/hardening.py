"""Production hardening, assembled for the app factory.

Like :mod:`graphql_api.server.app`, this sits at the top of the import graph: it wires
schema extensions (query limits and the document cache, persisted queries, rate
limits, metrics),
ASGI middlewares (request ids, access log, metrics, CORS, body limit, CSRF),
the ``/metrics`` and ``/readyz`` routes, and the database and Redis breakers,
from one set of settings. Nothing does I/O until :meth:`Hardening.running`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis import asyncio as redis
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from graphql_api.hardening.guarded_timeseries import GuardedTimeSeriesStore
from graphql_api.hardening.http_guards import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    CsrfPreventionMiddleware,
    RequestIdMiddleware,
    cors_middleware,
)
from graphql_api.hardening.observability.extension import ServiceErrors, operation_metrics
from graphql_api.hardening.observability.metrics import (
    Metrics,
    MetricsMiddleware,
    metrics_endpoint,
)
from graphql_api.hardening.persisted_queries.extension import persisted_queries
from graphql_api.hardening.persisted_queries.stores import (
    MemoryStore,
    PersistedQueryStore,
    RedisStore,
    load_allowlist,
)
from graphql_api.hardening.query_limits.document_cache import DocumentCache
from graphql_api.hardening.query_limits.guard import ExtensionFactory, QueryLimits, limit_extensions
from graphql_api.hardening.rate_limits.buckets import BucketSpec, RateLimiter
from graphql_api.hardening.rate_limits.extension import RateLimits, rate_limiting
from graphql_api.platform.hardening_settings import HardeningSettings
from graphql_api.platform.logging import level_number
from graphql_api.platform.resilience import CircuitBreaker, guard_engine
from graphql_api.realtime.redis_backend import redis_client
from graphql_api.server.readiness import readiness_endpoint


def tracing_extensions(enabled: bool) -> list[ExtensionFactory]:
    """OpenTelemetry spans per operation and resolver (Strawberry's extension).

    Spans go to the global tracer provider: ``opentelemetry-instrument`` sets it
    (and its exporter) from ``OTEL_*`` variables, or the embedding program does.
    Asking for tracing without the packages fails at start-up rather than
    silently tracing nothing.
    """
    if not enabled:
        return []
    if importlib.util.find_spec("opentelemetry") is None:
        raise RuntimeError("TRACING=true needs OpenTelemetry: pip install 'quantgraph[tracing]'")
    from strawberry.extensions.tracing import OpenTelemetryExtension

    return [OpenTelemetryExtension]


class Hardening:
    """Parameters:
    settings: the app's settings (any object with the :class:`HardeningSettings` fields).
    """

    def __init__(self, settings: HardeningSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.database_breaker = CircuitBreaker(
            "database",
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout=settings.breaker_reset_seconds,
        )
        self.redis_breaker = CircuitBreaker(
            "redis",
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout=settings.breaker_reset_seconds,
        )
        redis_url = settings.shared_redis_url
        # Short timeouts: a rate-limit check must never hang a request on Redis.
        self.redis: redis.Redis | None = (
            redis_client(redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
            if redis_url
            else None
        )
        self.allowlist = (
            load_allowlist(settings.persisted_queries_allowlist)
            if settings.persisted_queries_allowlist is not None
            else None
        )
        self.store: PersistedQueryStore | None = None
        if settings.persisted_queries:
            local = MemoryStore(settings.persisted_queries_cache_size)
            self.store = (
                RedisStore(
                    self.redis,
                    ttl_seconds=settings.persisted_queries_ttl_seconds,
                    key_prefix=settings.redis_key_prefix,
                    local=local,
                    breaker=self.redis_breaker,
                )
                if self.redis is not None
                else local
            )
        self.limiter = RateLimiter(
            redis_client=self.redis,
            breaker=self.redis_breaker,
            key_prefix=settings.redis_key_prefix,
        )
        self.query_limits = QueryLimits(
            max_depth=settings.query_max_depth,
            max_aliases=settings.query_max_aliases,
            max_tokens=settings.query_max_tokens,
            max_cost=settings.query_max_cost,
            max_fields=settings.query_max_fields,
            list_size=settings.query_list_size,
            introspection=settings.introspection,
        )
        self.document_cache = DocumentCache(
            max_entries=settings.document_cache_size, max_bytes=settings.document_cache_max_bytes
        )
        self.rate_limits = RateLimits(
            user=BucketSpec("user", settings.rate_limit_burst, settings.rate_limit_per_second),
            anonymous=BucketSpec(
                "anonymous",
                settings.rate_limit_anonymous_burst,
                settings.rate_limit_anonymous_per_second,
            ),
            place_order=BucketSpec(
                "placeOrder", settings.place_order_burst, settings.place_order_per_second
            ),
            exempt_roles=frozenset(role.upper() for role in settings.rate_limit_exempt_roles),
        )
        self.metrics.track_breaker(self.database_breaker)
        self.metrics.track_document_cache(self.document_cache)
        if self.redis is not None:
            self.metrics.track_breaker(self.redis_breaker)

    def schema_extensions(self) -> list[ExtensionFactory]:
        """To follow ``ErrorCodes`` and ``MaskInternalErrors``, in this order."""
        extensions: list[ExtensionFactory] = [
            operation_metrics(self.metrics),
            ServiceErrors,
            persisted_queries(self.store if self.allowlist is None else None, self.allowlist),
            *limit_extensions(self.query_limits, self.document_cache),
        ]
        extensions += tracing_extensions(self.settings.tracing)
        if self.settings.rate_limit:
            extensions.append(
                rate_limiting(
                    self.limiter,
                    self.rate_limits,
                    lambda bucket: self.metrics.rate_limited.labels(bucket).inc(),
                )
            )
        return extensions

    def middleware(self, *, log_level: str = "info") -> list[Middleware]:
        """Outermost first. ``log_level``: the app's ``LOG_LEVEL``; access lines are INFO,
        so above it none could be written and the access log is left out of the stack."""
        settings = self.settings
        stack = [Middleware(RequestIdMiddleware)]
        if settings.access_log and level_number(log_level) <= logging.INFO:
            stack.append(Middleware(AccessLogMiddleware))
        if settings.metrics:
            stack.append(
                Middleware(
                    MetricsMiddleware,
                    metrics=self.metrics,
                    routes=("/graphql", "/metrics", "/readyz", "/healthz", "/"),
                )
            )
        if settings.cors_origins:
            stack.append(cors_middleware(settings.cors_origins))
        stack.append(Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes))
        if settings.csrf_prevention:
            stack.append(Middleware(CsrfPreventionMiddleware))
        return stack

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/readyz", readiness_endpoint(timeout=self.settings.readiness_timeout_seconds))
        ]
        if self.settings.metrics:
            routes.append(Route("/metrics", metrics_endpoint(self.metrics)))
        return routes

    @contextlib.asynccontextmanager
    async def running(self, services: Any) -> AsyncIterator[None]:
        """Guard and instrument the running services; release Redis at the end."""
        settings = self.settings
        engine = services.engine
        breaker = guard_engine(
            engine,
            self.database_breaker,
            connect_timeout=settings.db_connect_timeout_seconds,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        self.metrics.track_breaker(breaker)
        remove = self.metrics.instrument_engine(engine)
        self.metrics.track_hub(services.hub)
        self.metrics.track_activity(services.activity)
        self.metrics.track_market_data(services.ingestor.health)
        if isinstance(services.timeseries, GuardedTimeSeriesStore):
            self.metrics.track_breaker(services.timeseries.breaker)
        try:
            yield
        finally:
            remove()
            if self.redis is not None:
                await self.redis.aclose()
