"""Backtests, strategy kinds, start/stop, bar imports and indicator series: thin hand-offs."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from graphql_api.market.imports import bars as bar_imports
from graphql_api.market.indicators import FloatArray
from graphql_api.strategies import lifecycle as strategy_lifecycle
from graphql_api.strategies.backtest import service as backtests
from graphql_api.strategies.definitions import StrategyOutcome
from graphql_api.strategies.rules import PARAMETER_SPECS, ParameterSpec
from resolvers import market
from resolvers.context import Info
from resolvers.errors import bad_user_input
from resolvers.pagination import parse_id
from storage.timeseries import Bar, KlineInterval

# An indicator period beyond this is no chart anyone draws; it only costs memory.
MAX_INDICATOR_PERIOD = 10_000


async def run_backtest(info: Info, request: backtests.BacktestRequest) -> backtests.BacktestOutcome:
    services = info.context.services
    return await backtests.run_backtest(
        services.sessions, services.catalog, services.timeseries, request
    )


def strategy_kinds() -> list[tuple[str, tuple[ParameterSpec, ...]]]:
    return list(PARAMETER_SPECS.items())


async def start_strategy(info: Info, strategy_id: str) -> StrategyOutcome:
    services = info.context.services
    return await strategy_lifecycle.start_strategy(
        services.sessions, services.outbox, info.context.user_id, parse_id(strategy_id)
    )


async def stop_strategy(info: Info, strategy_id: str) -> StrategyOutcome:
    services = info.context.services
    return await strategy_lifecycle.stop_strategy(
        services.sessions, services.outbox, info.context.user_id, parse_id(strategy_id)
    )


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


async def kline_series(
    info: Info,
    symbol: str,
    interval: KlineInterval,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[Bar]:
    """Same bars, arguments and limits as the ``klines`` query."""
    return await market.klines(info, symbol, interval, start, end, limit)


def indicator(compute: Callable[..., Any], *series: FloatArray, **arguments: int | float) -> Any:
    """Run one vectorised indicator; a bad argument is the caller's mistake."""
    for name, value in arguments.items():
        if isinstance(value, int) and not 1 <= value <= MAX_INDICATOR_PERIOD:
            raise bad_user_input(
                f"{name} must be between 1 and {MAX_INDICATOR_PERIOD}", argument=name
            )
    try:
        return compute(*series, **arguments)
    except ValueError as error:
        raise bad_user_input(str(error)) from error


def nullable(values: FloatArray) -> list[float | None]:
    """NaN (warm-up) becomes null."""
    return [None if math.isnan(value) else value for value in values.tolist()]


def floats(values: list[Any]) -> FloatArray:
    return np.asarray([float(value) for value in values], dtype=np.float64)
