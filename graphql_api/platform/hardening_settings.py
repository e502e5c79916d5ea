"""Settings for production hardening: query limits, persisted queries, rate limits,
HTTP guards, timeouts and circuit breakers, metrics.

A mixin of :class:`~graphql_api.platform.settings.Settings` (``class Settings(HardeningSettings)``):
every field maps to the environment variable named by its alias, like the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class HardeningSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    # Query limits: refused before any resolver runs.
    # Depth at most 64: the walkers of a document recurse as deep as it nests.
    query_max_depth: int = Field(12, alias="QUERY_MAX_DEPTH", ge=1, le=64)
    query_max_aliases: int = Field(30, alias="QUERY_MAX_ALIASES", ge=0)
    query_max_tokens: int = Field(5000, alias="QUERY_MAX_TOKENS", ge=10)
    query_max_cost: int = Field(10_000, alias="QUERY_MAX_COST", ge=1)
    query_max_fields: int = Field(1000, alias="QUERY_MAX_FIELDS", ge=1)
    query_list_size: int = Field(20, alias="QUERY_LIST_SIZE", ge=1)
    introspection: bool = Field(True, alias="INTROSPECTION")
    # Parsed and validated documents kept per process (0: parse and validate every time).
    document_cache_size: int = Field(1000, alias="DOCUMENT_CACHE_SIZE", ge=0)
    document_cache_max_bytes: int = Field(500_000, alias="DOCUMENT_CACHE_MAX_BYTES", ge=0)

    # Persisted queries.
    persisted_queries: bool = Field(True, alias="PERSISTED_QUERIES")
    persisted_queries_cache_size: int = Field(1000, alias="PERSISTED_QUERIES_CACHE_SIZE", ge=1)
    persisted_queries_ttl_seconds: int = Field(
        7 * 24 * 3600, alias="PERSISTED_QUERIES_TTL_SECONDS", ge=1
    )
    persisted_queries_allowlist: Path | None = Field(None, alias="PERSISTED_QUERIES_ALLOWLIST")

    # Shared state across processes (APQ cache, rate limit buckets).
    redis_url: str | None = Field(None, alias="REDIS_URL")
    redis_key_prefix: str = Field("quantgraph:", alias="REDIS_KEY_PREFIX")

    # Rate limits: token buckets in query-cost points (placeOrder: in orders).
    rate_limit: bool = Field(True, alias="RATE_LIMIT")
    rate_limit_burst: float = Field(20_000, alias="RATE_LIMIT_BURST", gt=0)
    rate_limit_per_second: float = Field(1_000, alias="RATE_LIMIT_PER_SECOND", gt=0)
    rate_limit_anonymous_burst: float = Field(5_000, alias="RATE_LIMIT_ANONYMOUS_BURST", gt=0)
    rate_limit_anonymous_per_second: float = Field(
        200, alias="RATE_LIMIT_ANONYMOUS_PER_SECOND", gt=0
    )
    place_order_burst: float = Field(50, alias="PLACE_ORDER_BURST", gt=0)
    place_order_per_second: float = Field(10, alias="PLACE_ORDER_PER_SECOND", gt=0)
    rate_limit_exempt_roles: Annotated[tuple[str, ...], NoDecode] = Field(
        ("FEED",), alias="RATE_LIMIT_EXEMPT_ROLES"
    )

    # HTTP guards.
    max_body_bytes: int = Field(1_000_000, alias="MAX_BODY_BYTES", ge=1024)
    csrf_prevention: bool = Field(True, alias="CSRF_PREVENTION")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field((), alias="CORS_ORIGINS")
    access_log: bool = Field(True, alias="ACCESS_LOG")

    # Timeouts and circuit breakers.
    db_statement_timeout_ms: int = Field(10_000, alias="DB_STATEMENT_TIMEOUT_MS", ge=0)
    db_connect_timeout_seconds: float = Field(5.0, alias="DB_CONNECT_TIMEOUT_SECONDS", gt=0)
    breaker_failure_threshold: int = Field(5, alias="BREAKER_FAILURE_THRESHOLD", ge=1)
    breaker_reset_seconds: float = Field(5.0, alias="BREAKER_RESET_SECONDS", gt=0)
    readiness_timeout_seconds: float = Field(2.0, alias="READINESS_TIMEOUT_SECONDS", gt=0)

    # Observability.
    metrics: bool = Field(True, alias="METRICS")
    tracing: bool = Field(False, alias="TRACING")

    @field_validator("cors_origins", "rate_limit_exempt_roles", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # "https://a.example, https://b.example" reads better in an env file than JSON.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def shared_redis_url(self) -> str | None:
        """REDIS_URL, or BROADCAST_URL when the broadcaster already runs on Redis."""
        if self.redis_url:
            return self.redis_url
        broadcast = getattr(self, "broadcast_url", "")
        return broadcast if broadcast.startswith(("redis://", "rediss://")) else None
