"""Market-data sources behind one interface (``MARKET_FEED``).

Each source owns a set of symbols and feeds the one ingest path
(:class:`~graphql_api.market.ingest.TickIngestor`); a supervisor restarts it with
backoff behind a circuit breaker, and reports its health per source. A source that
keeps history is also a :class:`DailyBarSource` (``quantgraph backfill-bars``).
"""

from graphql_api.market.sources.base import (
    BAR_HEADER,
    DailyBarSource,
    MarketDataSource,
    SourceConfigError,
)
from graphql_api.market.sources.supervisor import Backoff, supervise

__all__ = [
    "BAR_HEADER",
    "Backoff",
    "DailyBarSource",
    "MarketDataSource",
    "SourceConfigError",
    "supervise",
]
