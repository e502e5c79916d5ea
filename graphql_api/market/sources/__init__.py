"""Market-data sources behind one interface (``MARKET_FEED``).

Each source owns a set of symbols and feeds the one ingest path
(:class:`~graphql_api.market.ingest.TickIngestor`); a supervisor restarts it with
backoff behind a circuit breaker, and reports its health per source.
"""

from graphql_api.market.sources.base import MarketDataSource, SourceConfigError
from graphql_api.market.sources.supervisor import Backoff, supervise

__all__ = ["Backoff", "MarketDataSource", "SourceConfigError", "supervise"]
