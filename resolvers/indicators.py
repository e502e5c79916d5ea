"""The ``klineSeries`` query: bars as columns, and the indicators computed over them."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from graphql_api.market.indicators import FloatArray
from resolvers import market
from resolvers.context import Info
from resolvers.errors import bad_user_input
from storage.timeseries import Bar, KlineInterval

# An indicator period beyond this is no chart anyone draws; it only costs memory.
MAX_INDICATOR_PERIOD = 10_000


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
