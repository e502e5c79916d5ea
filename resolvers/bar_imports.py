"""The ``importBars`` mutation: daily bars from CSV text, for data feeds."""

from __future__ import annotations

from graphql_api.strategies.backtest import service as backtests
from resolvers.context import Info


async def import_bars(info: Info, symbol: str, text: str) -> backtests.ImportReport:
    # Over GraphQL an import is all or nothing: a client retries a whole file.
    return await backtests.import_bars(
        info.context.services,
        symbol,
        text,
        all_or_nothing=True,
        max_rows=backtests.MAX_IMPORT_ROWS,
    )
