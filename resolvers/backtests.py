"""The ``runBacktest`` mutation: a thin hand-off to the backtest service."""

from __future__ import annotations

from graphql_api.strategies.backtest import service as backtests
from resolvers.context import Info


async def run_backtest(info: Info, request: backtests.BacktestRequest) -> backtests.BacktestOutcome:
    return await backtests.run_backtest(info.context.services, request)
