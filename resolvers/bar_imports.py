"""The ``importBars`` mutation: daily bars from CSV text, for data feeds."""

from __future__ import annotations

from datetime import timedelta

from graphql_api.market.imports import bars as bar_imports
from resolvers.context import Info


async def import_bars(info: Info, symbol: str, text: str) -> bar_imports.ImportReport:
    # Over GraphQL an import is all or nothing: a client retries a whole file.
    services = info.context.services
    settings = services.settings
    return await bar_imports.import_bars(
        services.catalog,
        services.sessions,
        symbol,
        text,
        max_age_years=settings.max_bar_age_years,
        max_future=timedelta(seconds=settings.max_tick_future_seconds),
        all_or_nothing=True,
        max_rows=bar_imports.MAX_IMPORT_ROWS,
    )
