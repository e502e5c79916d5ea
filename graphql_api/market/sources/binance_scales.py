"""Binance's grids: each symbol's price and quantity steps from ``exchangeInfo``, and
a value cut to a step's decimals. Shared by the stream (:mod:`.binance`) and the
klines backfill (:mod:`.binance_klines`)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal

import httpx

from graphql_api.market.sources.base import SourceConfigError
from graphql_api.market.sources.binance_messages import (
    MalformedMessageError,
    Scale,
    parse_exchange_info,
)


async def fetch_scales(rest_url: str, symbols: Sequence[str], timeout: float) -> dict[str, Scale]:
    """Each symbol's grid from ``GET /api/v3/exchangeInfo?symbols=[...]``; a symbol Binance
    does not know is a :class:`SourceConfigError`, an unreachable API an ``httpx`` error."""
    url = f"{rest_url.rstrip('/')}/api/v3/exchangeInfo"
    listed = "[" + ",".join(f'"{symbol}"' for symbol in symbols) + "]"
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.get(url, params={"symbols": listed})
    if response.status_code == 400:
        # Binance answers an unknown symbol with 400 {"code": -1121, "msg": "Invalid symbol."}
        raise SourceConfigError(f"BINANCE_SYMBOLS: exchangeInfo refused: {response.text[:200]}")
    response.raise_for_status()
    try:
        return parse_exchange_info(response.json(), list(symbols))
    except (MalformedMessageError, ValueError) as error:
        raise SourceConfigError(f"BINANCE_SYMBOLS: {error}") from error


def on_grid(value: Decimal, step: Decimal) -> Decimal:
    """``value`` with the decimals of the exchange's ``step`` (``95000.01000000`` with
    tick size ``0.01`` -> ``95000.01``); never an exponent form."""
    decimals = max(0, -int(step.normalize().as_tuple().exponent))
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)
