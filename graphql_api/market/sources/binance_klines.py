"""Daily bars from Binance's klines REST endpoint (the Binance source's
:class:`~graphql_api.market.sources.base.DailyBarSource` side).

``GET /api/v3/klines?symbol=BTCUSDT&interval=1d&startTime=<ms>&endTime=<ms>&limit=1000``
answers arrays ``[openTime, open, high, low, close, volume, closeTime, ...]`` with
the numbers as strings. Days are UTC (Binance's default). Pages of 1,000 days are
fetched until the range is covered. The bars come out as lines of the
``import-bars`` CSV format, so they are checked, written and summarised by the
same code as a file import; prices and volumes are cut to the decimals of the
exchange's tick and step sizes (``exchangeInfo``), never through floats.

Rate limits: Binance answers 429 with ``Retry-After`` (seconds) when a client asks
too fast, and 418 when it kept asking after a 429 (the IP is banned for a while).
A 429 is waited out and retried (``MAX_RETRIES`` times, each wait at most
``MAX_RETRY_AFTER_SECONDS``); a 418, or a wait longer than that, ends the backfill
with the time to wait in the message rather than risk a longer ban.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import httpx

from graphql_api.market.sources.base import BAR_HEADER, SourceConfigError, check_range
from graphql_api.market.sources.binance_messages import Scale
from graphql_api.market.sources.binance_scales import fetch_scales, on_grid
from graphql_api.platform.number_text import NumberTextError, parse_plain_decimal

PAGE = 1000
DAY_MS = 86_400_000
MAX_RETRIES = 5
MAX_RETRY_AFTER_SECONDS = 60.0

Sleep = Callable[[float], Awaitable[None]]


class RateLimitedError(Exception):
    """Binance asks us to stop for longer than a backfill should wait (or banned us)."""


async def daily_bar_pages(
    rest_url: str,
    symbol: str,
    start: date,
    end: date,
    *,
    timeout: float = 10.0,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[list[str]]:
    """The ``date,open,high,low,close,volume`` CSV of ``symbol``'s days from ``start``
    to ``end`` inclusive, one chunk per page fetched (the header leads the first).
    :class:`SourceConfigError` for an unknown symbol or an answer not in the
    documented format, :class:`RateLimitedError` when Binance will not serve us
    soon; other ``httpx`` errors pass through."""
    check_range(start, end)
    symbol = symbol.upper()
    scale = (await fetch_scales(rest_url, [symbol], timeout))[symbol]
    url = f"{rest_url.rstrip('/')}/api/v3/klines"
    first = _millis(start)
    last = _millis(end) + DAY_MS - 1
    header = [BAR_HEADER]
    async with httpx.AsyncClient(timeout=timeout) as client:
        while first <= last:
            params: dict[str, str | int] = {
                "symbol": symbol,
                "interval": "1d",
                "startTime": first,
                "endTime": last,
                "limit": PAGE,
            }
            rows = await _page(client, url, params, sleep)
            yield header + [_line(row, scale) for row in rows]
            header = []
            if len(rows) < PAGE:
                break
            first = int(rows[-1][0]) + DAY_MS
    if header:  # an empty first page still starts the CSV
        yield header


async def daily_bar_lines(
    rest_url: str, symbol: str, start: date, end: date, *, timeout: float = 10.0
) -> list[str]:
    """All of :func:`daily_bar_pages` as one list of lines."""
    lines: list[str] = []
    async for page in daily_bar_pages(rest_url, symbol, start, end, timeout=timeout):
        lines.extend(page)
    return lines


async def _page(
    client: httpx.AsyncClient, url: str, params: dict[str, str | int], sleep: Sleep
) -> list[Any]:
    for attempt in range(MAX_RETRIES + 1):
        response = await client.get(url, params=params)
        if response.status_code == HTTPStatus.BAD_REQUEST:
            raise SourceConfigError(f"klines refused: {response.text[:200]}")
        if response.status_code in (HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.IM_A_TEAPOT):
            wait = _retry_after(response)
            if (
                response.status_code == HTTPStatus.IM_A_TEAPOT
                or wait > MAX_RETRY_AFTER_SECONDS
                or attempt == MAX_RETRIES
            ):
                raise RateLimitedError(
                    f"Binance rate limit (HTTP {response.status_code}): "
                    f"retry after {wait:g} seconds"
                )
            await sleep(wait)
            continue
        response.raise_for_status()
        rows = response.json()
        if not isinstance(rows, list):
            raise SourceConfigError("klines: the answer is not a list")
        return rows
    raise AssertionError("unreachable: the last attempt returns or raises")


def _retry_after(response: httpx.Response) -> float:
    """``Retry-After`` in seconds (Binance sends seconds); 1 when absent or unreadable."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


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
