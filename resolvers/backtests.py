"""The ``runBacktest`` mutation: a thin hand-off to the backtest service."""

from __future__ import annotations

from graphql_api.strategies.backtest import service as backtests
from resolvers.context import Info


async def run_backtest(info: Info, request: backtests.BacktestRequest) -> backtests.BacktestOutcome:
    services = info.context.services
    return await backtests.run_backtest(
        services.sessions, services.catalog, services.timeseries, request
    )
