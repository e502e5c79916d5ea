"""Configuration, read once from the environment and typed.

Every field maps to an environment variable of the same name in upper case
(``DATABASE_URL``, ``QUANTGRAPH_PORT``…); the README's configuration table lists
them all. A bad value fails at start-up naming the variable.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from graphql_api.platform.hardening_settings import HardeningSettings

# How far back a tick or a daily bar from outside may be (see market/value_ranges.py).
DEFAULT_MAX_TICK_AGE_YEARS = 30
DEFAULT_MAX_BAR_AGE_YEARS = 100
# Keeps the oldest allowed time well inside what a datetime can hold.
MAX_AGE_YEARS_LIMIT = 1000

# Quote currencies: ISO 4217 codes (USD, CNY) and exchange tokens (USDT), upper case.
CURRENCY_PATTERN = re.compile(r"[A-Z][A-Z0-9]{2,7}")

# What MARKET_FEED may name (comma-separated), besides none.
MARKET_SOURCES = ("simulated", "replay", "binance")

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/quantgraph.db"
DEFAULT_DEMO_PASSWORD = "demo-password"
# Secrets that were once written in this source: anyone can sign tokens with them.
PUBLIC_JWT_SECRETS = frozenset({"quantgraph-development-secret-change-me"})


class Settings(HardeningSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", alias="QUANTGRAPH_HOST")
    port: int = Field(8000, alias="QUANTGRAPH_PORT", ge=0, le=65535)
    environment: Literal["development", "production"] = Field("development", alias="QUANTGRAPH_ENV")
    log_level: str = Field("info", alias="LOG_LEVEL")

    database_url: str = Field(DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    database_pool_size: int = Field(10, alias="DATABASE_POOL_SIZE", ge=1)
    auto_migrate: bool = Field(True, alias="AUTO_MIGRATE")
    seed_demo_data: bool = Field(True, alias="SEED_DEMO_DATA")

    broadcast_url: str = Field("memory://", alias="BROADCAST_URL")
    tdengine_url: str | None = Field(None, alias="TDENGINE_URL")
    tdengine_precision: Literal["ms", "us", "ns"] = Field("us", alias="TDENGINE_PRECISION")
    tdengine_keep_days: int | None = Field(None, alias="TDENGINE_KEEP_DAYS", ge=1)
    tdengine_pool_size: int = Field(4, alias="TDENGINE_POOL_SIZE", ge=1)
    tdengine_buffer_rows: int = Field(100_000, alias="TDENGINE_BUFFER_ROWS", ge=0)
    tdengine_write_timeout_seconds: float = Field(1.0, alias="TDENGINE_WRITE_TIMEOUT_SECONDS", gt=0)

    # Comma-separated market-data sources (graphql_api/market/sources), or none.
    market_feed: str = Field("simulated", alias="MARKET_FEED")
    # Exponential backoff between a failed source's reconnects, up to this (seconds).
    source_backoff_max_seconds: float = Field(30.0, alias="SOURCE_BACKOFF_MAX_SECONDS", gt=0)
    replay_file: Path | None = Field(None, alias="REPLAY_FILE")
    replay_symbols: str = Field("", alias="REPLAY_SYMBOLS")
    replay_from: datetime | None = Field(None, alias="REPLAY_FROM")
    replay_to: datetime | None = Field(None, alias="REPLAY_TO")
    # A factor (1 = recorded pace, 10 = ten times faster) or max (0): no waits.
    replay_speed: str = Field("1", alias="REPLAY_SPEED")
    replay_loop: bool = Field(False, alias="REPLAY_LOOP")
    # A recorded session day played now is that day's market: its symbols trade at
    # any wall-clock hour on the processes that replay (false: their sessions apply).
    replay_ignore_sessions: bool = Field(True, alias="REPLAY_IGNORE_SESSIONS")
    # Binance spot streams: our symbol codes (BTCUSDT), each also Binance's.
    binance_symbols: str = Field("", alias="BINANCE_SYMBOLS")
    binance_ws_url: str = Field("wss://stream.binance.com:9443", alias="BINANCE_WS_URL")
    binance_rest_url: str = Field("https://api.binance.com", alias="BINANCE_REST_URL")
    binance_stall_seconds: float = Field(30.0, alias="BINANCE_STALL_SECONDS", gt=0)
    # Binance cuts a connection at 24 hours; renew it before that.
    binance_max_connection_seconds: float = Field(
        23.5 * 3600, alias="BINANCE_MAX_CONNECTION_SECONDS", gt=0, le=24 * 3600
    )
    feed_ticks_per_second: float = Field(50.0, alias="FEED_TICKS_PER_SECOND", gt=0, le=100_000)
    feed_seed: int = Field(42, alias="FEED_SEED")
    # The simulated feed quotes only symbols whose session is open; true quotes all
    # at any hour (demos of symbols with real hours outside them).
    feed_ignore_sessions: bool = Field(False, alias="FEED_IGNORE_SESSIONS")
    # An outside feed calls ingestTicks all the time: its last-tick age is a metric
    # from start-up on, so an alert sees it stop (docs/operations.md, "Alerts").
    external_feed_expected: bool = Field(False, alias="EXTERNAL_FEED_EXPECTED")

    # 0: group commit (a batch is written as soon as the previous write is done).
    tick_flush_interval_ms: int = Field(0, alias="TICK_FLUSH_INTERVAL_MS", ge=0, le=60_000)
    tick_batch_size: int = Field(1000, alias="TICK_BATCH_SIZE", ge=1)
    # Tick batches on their way to PostgreSQL at once (elsewhere one at a time).
    tick_writes_in_flight: int = Field(4, alias="TICK_WRITES_IN_FLIGHT", ge=1, le=64)
    max_tick_future_seconds: int = Field(5, alias="MAX_TICK_FUTURE_SECONDS", ge=0)
    # Older stamps are refused: typos (year 999) and epoch-zero bugs, never history.
    max_tick_age_years: int = Field(
        DEFAULT_MAX_TICK_AGE_YEARS, alias="MAX_TICK_AGE_YEARS", ge=1, le=MAX_AGE_YEARS_LIMIT
    )
    max_bar_age_years: int = Field(
        DEFAULT_MAX_BAR_AGE_YEARS, alias="MAX_BAR_AGE_YEARS", ge=1, le=MAX_AGE_YEARS_LIMIT
    )

    max_page_size: int = Field(100, alias="MAX_PAGE_SIZE", ge=1)
    max_series_limit: int = Field(10_000, alias="MAX_SERIES_LIMIT", ge=1)
    # Relational reads (orders, order, ...) answered by one SQL statement per root field
    # that builds the field's JSON (docs/compiled_reads.md); false: graphql-core resolves
    # every field (the reference path, and what the benchmark compares against).
    compiled_reads: bool = Field(True, alias="COMPILED_READS")
    subscriber_queue_size: int = Field(256, alias="SUBSCRIBER_QUEUE_SIZE", ge=1)
    ws_multiplex: bool = Field(True, alias="WS_MULTIPLEX")
    ws_send_queue_size: int = Field(256, alias="WS_SEND_QUEUE_SIZE", ge=1)
    ws_keep_alive_interval_seconds: float = Field(
        15.0, alias="WS_KEEP_ALIVE_INTERVAL_SECONDS", gt=0
    )
    # Compression is per socket: with it, serialize-once fans out to a deflate per
    # subscriber per message (half the server's CPU at 1,000 subscribers).
    ws_per_message_deflate: bool = Field(False, alias="WS_PER_MESSAGE_DEFLATE")
    ws_connection_init_timeout_seconds: float = Field(
        10.0, alias="WS_CONNECTION_INIT_TIMEOUT_SECONDS", gt=0
    )
    ws_max_subscriptions_per_connection: int = Field(
        100, alias="WS_MAX_SUBSCRIPTIONS_PER_CONNECTION", ge=1
    )
    ws_max_connections_per_user: int = Field(20, alias="WS_MAX_CONNECTIONS_PER_USER", ge=0)

    demo_username: str = Field("demo", alias="DEMO_USERNAME")
    demo_password: str = Field(DEFAULT_DEMO_PASSWORD, alias="DEMO_PASSWORD", min_length=8)
    demo_start_cash: Decimal = Field(Decimal("1000000"), alias="DEMO_START_CASH", ge=0)
    # Cash every account starts with per quote currency, as JSON ({"USD": "100000"});
    # a currency not named here starts with DEMO_START_CASH.
    start_cash_by_currency: dict[str, Decimal] = Field(
        default_factory=dict, alias="START_CASH_BY_CURRENCY"
    )

    # Unset: the embedded default generates one per data directory (graphql_api.auth.secret).
    jwt_secret: str | None = Field(None, alias="JWT_SECRET", min_length=16)
    access_token_ttl_seconds: int = Field(900, alias="ACCESS_TOKEN_TTL_SECONDS", ge=1)
    refresh_token_ttl_seconds: int = Field(7 * 24 * 3600, alias="REFRESH_TOKEN_TTL_SECONDS", ge=1)
    anonymous_market_data: bool = Field(True, alias="ANONYMOUS_MARKET_DATA")
    # Guessing limits: failed sign-ins per account and per address, refilled over a window.
    login_failures_per_account: int = Field(10, alias="LOGIN_FAILURES_PER_ACCOUNT", ge=1)
    login_failures_per_address: int = Field(50, alias="LOGIN_FAILURES_PER_ADDRESS", ge=1)
    login_failure_window_seconds: float = Field(300.0, alias="LOGIN_FAILURE_WINDOW_SECONDS", gt=0)
    password_hash_workers: int = Field(2, alias="PASSWORD_HASH_WORKERS", ge=1)
    password_hash_queue: int = Field(16, alias="PASSWORD_HASH_QUEUE", ge=1)
    # How long a user's role is trusted without asking the database again.
    role_cache_seconds: float = Field(5.0, alias="ROLE_CACHE_SECONDS", ge=0)

    commission_rate: Decimal = Field(Decimal("0.0003"), alias="COMMISSION_RATE", ge=0, lt=1)
    max_order_notional: Decimal = Field(Decimal("5000000"), alias="MAX_ORDER_NOTIONAL", gt=0)
    price_band_percent: Decimal = Field(Decimal("10"), alias="PRICE_BAND_PERCENT", gt=0)
    market_order_buffer_percent: Decimal = Field(
        Decimal("5"), alias="MARKET_ORDER_BUFFER_PERCENT", ge=0
    )
    allow_short_selling: bool = Field(False, alias="ALLOW_SHORT_SELLING")
    partial_fills: bool = Field(False, alias="PARTIAL_FILLS")
    # A tick fills an order only if stamped at or after the order's creation,
    # less this tolerance (for feeds whose clocks lag the server's); ticks older
    # than the symbol's latest or than MATCHER_MAX_TICK_LAG_SECONDS drive no fills.
    matcher_clock_tolerance_ms: int = Field(0, alias="MATCHER_CLOCK_TOLERANCE_MS", ge=0, le=60_000)
    matcher_max_tick_lag_seconds: float = Field(5.0, alias="MATCHER_MAX_TICK_LAG_SECONDS", gt=0)
    matcher_enabled: bool = Field(True, alias="MATCHER_ENABLED")
    # Symbols are spread over this many matcher shards, each led by one process.
    # Every process of a cluster must use the same number.
    matcher_shards: int = Field(1, alias="MATCHER_SHARDS", ge=1, le=64)
    strategy_engine_enabled: bool = Field(True, alias="STRATEGY_ENGINE_ENABLED")
    # Bars a runner replays (from where the strategy went live) to rebuild its
    # indicator state on a restart, failover or resync; see docs/strategies.md.
    strategy_max_replay_bars: int = Field(
        100_000, alias="STRATEGY_MAX_REPLAY_BARS", ge=1, le=10_000_000
    )
    # Every account's end-of-day equity snapshot, by one process per cluster.
    equity_snapshots_enabled: bool = Field(True, alias="EQUITY_SNAPSHOTS_ENABLED")
    alert_engine_enabled: bool = Field(True, alias="ALERT_ENGINE_ENABLED")
    leader_lease_seconds: float = Field(5.0, alias="LEADER_LEASE_SECONDS", gt=0)

    # Watchlists are read whole (no paging) and streamed live: both stay bounded.
    max_watchlists_per_user: int = Field(50, alias="MAX_WATCHLISTS_PER_USER", ge=1, le=10_000)
    max_watchlist_symbols: int = Field(100, alias="MAX_WATCHLIST_SYMBOLS", ge=1, le=1000)

    # Alerts that can still fire (ACTIVE or PAUSED) per user: the engine holds them in memory.
    max_alerts_per_user: int = Field(200, alias="MAX_ALERTS_PER_USER", ge=1, le=100_000)
    # Webhooks: where deliveries may go, and how they are retried (see docs/webhooks.md).
    webhooks_enabled: bool = Field(True, alias="WEBHOOKS_ENABLED")
    webhook_allow_private_addresses: bool = Field(False, alias="WEBHOOK_ALLOW_PRIVATE_ADDRESSES")
    webhook_timeout_seconds: float = Field(5.0, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0, le=60)
    webhook_max_attempts: int = Field(8, alias="WEBHOOK_MAX_ATTEMPTS", ge=1, le=100)
    webhook_backoff_seconds: float = Field(1.0, alias="WEBHOOK_BACKOFF_SECONDS", gt=0)
    webhook_max_backoff_seconds: float = Field(3600.0, alias="WEBHOOK_MAX_BACKOFF_SECONDS", gt=0)
    max_webhooks_per_user: int = Field(10, alias="MAX_WEBHOOKS_PER_USER", ge=1, le=1000)

    shutdown_timeout_seconds: float = Field(30.0, alias="SHUTDOWN_TIMEOUT_SECONDS", gt=0)
    gc_gen0_threshold: int = Field(20_000, alias="GC_GEN0_THRESHOLD", ge=0)

    @model_validator(mode="after")
    def _refuse_public_or_missing_secret(self) -> Settings:
        if self.jwt_secret in PUBLIC_JWT_SECRETS:
            raise ValueError("JWT_SECRET is a value published in the source; set your own")
        if self.environment == "production" and self.jwt_secret is None:
            raise ValueError("JWT_SECRET must be set to a secret of your own in production")
        return self

    @field_validator("market_feed")
    @classmethod
    def _check_market_feed(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        if names == ["none"] or not names:
            return "none"
        unknown = [name for name in names if name not in MARKET_SOURCES]
        if unknown:
            raise ValueError(
                f"unknown source {', '.join(unknown)}: use none or a comma-separated list of "
                + ", ".join(MARKET_SOURCES)
            )
        if len(set(names)) != len(names):
            raise ValueError("a source is named twice")
        return ",".join(names)

    @field_validator("replay_speed")
    @classmethod
    def _check_replay_speed(cls, value: str) -> str:
        text = value.strip().lower()
        if text in {"max", "0"}:
            return "max"
        try:
            speed = float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a speed factor (1, 10, ... or max)") from None
        if not 0 < speed < float("inf"):
            raise ValueError(f"{value!r} is not a speed factor above 0 (or max)")
        return text

    @model_validator(mode="after")
    def _check_replay(self) -> Settings:
        for name, moment in (("REPLAY_FROM", self.replay_from), ("REPLAY_TO", self.replay_to)):
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"{name} must carry a UTC offset (Z or +08:00)")
        if "binance" in self.market_feeds and not self.binance_symbol_list:
            raise ValueError("MARKET_FEED=binance needs BINANCE_SYMBOLS (e.g. BTCUSDT,ETHUSDT)")
        both = set(self.binance_symbol_list) & set(self.replay_symbol_list)
        if {"binance", "replay"} <= set(self.market_feeds) and both:
            raise ValueError(
                f"{', '.join(sorted(both))}: one source per symbol (replay or binance)"
            )
        if "replay" not in self.market_feeds:
            return self
        from_store = bool(self.replay_symbol_list or self.replay_from or self.replay_to)
        if self.replay_file is not None and from_store:
            raise ValueError("replay: set REPLAY_FILE or REPLAY_SYMBOLS/FROM/TO, not both")
        if self.replay_file is None and not (
            self.replay_symbol_list and self.replay_from and self.replay_to
        ):
            raise ValueError(
                "MARKET_FEED=replay needs REPLAY_FILE, or REPLAY_SYMBOLS, REPLAY_FROM and REPLAY_TO"
            )
        return self

    @property
    def market_feeds(self) -> tuple[str, ...]:
        """The sources to run (empty for ``none``)."""
        return () if self.market_feed == "none" else tuple(self.market_feed.split(","))

    @property
    def replay_symbol_list(self) -> tuple[str, ...]:
        return tuple(s.strip().upper() for s in self.replay_symbols.split(",") if s.strip())

    @property
    def binance_symbol_list(self) -> tuple[str, ...]:
        return tuple(s.strip().upper() for s in self.binance_symbols.split(",") if s.strip())

    @property
    def replay_speed_factor(self) -> float | None:
        """The replay's speed factor; None: as fast as possible."""
        return None if self.replay_speed == "max" else float(self.replay_speed)

    @field_validator("start_cash_by_currency")
    @classmethod
    def _check_start_cash(cls, amounts: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency, amount in amounts.items():
            if not CURRENCY_PATTERN.fullmatch(currency):
                raise ValueError(f"{currency!r} is not a currency code such as USD or USDT")
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"the start cash of {currency} must be a number >= 0")
        return amounts

    def start_cash(self, currency: str) -> Decimal:
        """What a new account holds in ``currency``: START_CASH_BY_CURRENCY's amount,
        else DEMO_START_CASH."""
        return self.start_cash_by_currency.get(currency, self.demo_start_cash)

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
