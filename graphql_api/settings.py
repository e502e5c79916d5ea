"""Configuration, read once from the environment and typed.

Every field maps to an environment variable of the same name in upper case
(``DATABASE_URL``, ``QUANTGRAPH_PORT``…); the README's configuration table lists
them all. A bad value fails at start-up naming the variable.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/quantgraph.db"


class Settings(BaseSettings):
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

    market_feed: Literal["simulated", "none"] = Field("simulated", alias="MARKET_FEED")
    feed_ticks_per_second: float = Field(50.0, alias="FEED_TICKS_PER_SECOND", gt=0, le=100_000)
    feed_seed: int = Field(42, alias="FEED_SEED")

    tick_flush_interval_ms: int = Field(50, alias="TICK_FLUSH_INTERVAL_MS", ge=1)
    tick_batch_size: int = Field(1000, alias="TICK_BATCH_SIZE", ge=1)
    max_tick_future_seconds: int = Field(5, alias="MAX_TICK_FUTURE_SECONDS", ge=0)

    max_page_size: int = Field(100, alias="MAX_PAGE_SIZE", ge=1)
    max_series_limit: int = Field(10_000, alias="MAX_SERIES_LIMIT", ge=1)
    subscriber_queue_size: int = Field(256, alias="SUBSCRIBER_QUEUE_SIZE", ge=1)

    demo_username: str = Field("demo", alias="DEMO_USERNAME")
    demo_start_cash: Decimal = Field(Decimal("1000000"), alias="DEMO_START_CASH", ge=0)

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
