"""Daily bars from Binance's klines REST endpoint, for ``quantgraph backfill-bars``.

``GET /api/v3/klines?symbol=BTCUSDT&interval=1d&startTime=<ms>&endTime=<ms>&limit=1000``
answers arrays ``[openTime, open, high, low, close, volume, closeTime, ...]`` with
the numbers as strings. Days are UTC (Binance's default). Pages of 1,000 days are
fetched until the range is covered. The bars come out as lines of the
``import-bars`` CSV format, so they are checked, written and summarised by the
same code as a file import; prices and volumes are cut to the decimals of the
exchange's tick and step sizes (``exchangeInfo``), never through floats.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx

from graphql_api.market.sources.base import SourceConfigError
from graphql_api.market.sources.binance import fetch_scales, on_grid
from graphql_api.market.sources.binance_messages import Scale
from graphql_api.platform.number_text import NumberTextError, parse_plain_decimal

PAGE = 1000
DAY_MS = 86_400_000


async def daily_bar_lines(
    rest_url: str,
    symbol: str,
    start: date,
    end: date,
    *,
    timeout: float = 10.0,
    on_page: Callable[[int], object] = lambda _days: None,
) -> list[str]:
    """The ``date,open,high,low,close,volume`` CSV (header first) of ``symbol``'s days
    from ``start`` to ``end`` inclusive. :class:`SourceConfigError` for an unknown
    symbol or an answer not in the documented format; ``httpx`` errors pass through."""
    symbol = symbol.upper()
    scale = (await fetch_scales(rest_url, [symbol], timeout))[symbol]
    url = f"{rest_url.rstrip('/')}/api/v3/klines"
    first = _millis(start)
    last = _millis(end) + DAY_MS - 1
    lines = ["date,open,high,low,close,volume"]
    async with httpx.AsyncClient(timeout=timeout) as client:
        while first <= last:
            params: dict[str, str | int] = {
                "symbol": symbol,
                "interval": "1d",
                "startTime": first,
                "endTime": last,
                "limit": PAGE,
            }
            response = await client.get(url, params=params)
            if response.status_code == 400:
                raise SourceConfigError(f"klines refused: {response.text[:200]}")
            response.raise_for_status()
            rows = response.json()
            if not isinstance(rows, list):
                raise SourceConfigError("klines: the answer is not a list")
            for row in rows:
                lines.append(_line(row, scale))
            on_page(len(rows))
            if len(rows) < PAGE:
                break
            first = int(rows[-1][0]) + DAY_MS
    return lines


def _millis(day: date) -> int:
    return int(datetime.combine(day, time(), UTC).timestamp() * 1000)


def _line(row: Any, scale: Scale) -> str:
    if not isinstance(row, list) or len(row) < 6 or not isinstance(row[0], int):
        raise SourceConfigError(f"klines: {str(row)[:80]} is not a kline")
    day = datetime.fromtimestamp(row[0] / 1000, UTC).date().isoformat()
    prices = [on_grid(_number(value), scale.tick_size) for value in row[1:5]]
    volume = on_grid(_number(row[5]), scale.step_size)
    return ",".join([day, *(str(price) for price in prices), str(volume)])


def _number(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise SourceConfigError(f"klines: {value!r} is not a decimal string")
    try:
        return parse_plain_decimal(value)
    except NumberTextError:
        raise SourceConfigError(f"klines: {value!r} is not a decimal number") from None


def days(start: date, end: date) -> int:
    """How many days the range covers (for the progress bar)."""
    return (end - start) // timedelta(days=1) + 1
