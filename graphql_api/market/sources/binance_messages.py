"""Binance spot market-stream messages and ``exchangeInfo``, parsed as documented and
never through floats: prices and quantities are Decimal from the strings Binance sends.

Combined streams wrap each event as ``{"stream": "<symbol>@<kind>", "data": {...}}``.
``bookTicker`` data: ``u`` (update id), ``s`` (symbol), ``b``/``B`` best bid price/qty,
``a``/``A`` best ask price/qty. ``trade`` data: ``e`` ("trade"), ``E`` (event time,
ms), ``s``, ``t`` (trade id), ``p`` price, ``q`` quantity, ``T`` (trade time, ms),
``m`` (buyer is maker). Stream names use lower-case symbols (``btcusdt``); our
symbol codes, like the ``s`` fields, are upper case (``BTCUSDT``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from graphql_api.platform.number_text import NumberTextError, parse_plain_decimal


class MalformedMessageError(ValueError):
    """A message that is not what the documentation says; skipped and counted."""


@dataclass(frozen=True, slots=True)
class Scale:
    """A symbol's grid at the exchange: ``PRICE_FILTER.tickSize``, ``LOT_SIZE.stepSize``."""

    tick_size: Decimal
    step_size: Decimal


@dataclass(frozen=True, slots=True)
class BookTicker:
    symbol: str
    update_id: int
    bid: Decimal
    ask: Decimal


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    trade_id: int
    price: Decimal
    quantity: Decimal
    time: datetime


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """Binance is about to close the connection: reconnect now."""


def stream_names(symbols: list[str]) -> list[str]:
    """The combined-stream names for ``symbols`` (our codes): book ticker and trades."""
    return [f"{s.lower()}@{kind}" for s in symbols for kind in ("bookTicker", "trade")]


def parse_message(text: str | bytes) -> BookTicker | Trade | ServerShutdown:
    """One combined-stream frame; :class:`MalformedMessageError` when it is not one."""
    try:
        message = json.loads(text, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedMessageError(f"not JSON: {error}") from None
    if not isinstance(message, dict):
        raise MalformedMessageError("not a JSON object")
    data = message.get("data", message)
    if not isinstance(data, dict):
        raise MalformedMessageError("data is not an object")
    if data.get("e") == "serverShutdown":
        return ServerShutdown()
    stream = message.get("stream")
    if not isinstance(stream, str) or "@" not in stream:
        raise MalformedMessageError("no stream name")
    kind = stream.split("@", 1)[1]
    if kind == "bookTicker":
        return BookTicker(
            _symbol(data), _integer(data, "u"), _decimal(data, "b"), _decimal(data, "a")
        )
    if kind == "trade":
        if data.get("e") != "trade":
            raise MalformedMessageError("a trade stream event that is not a trade")
        millis = _integer(data, "T")
        try:
            at = datetime.fromtimestamp(millis / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise MalformedMessageError(f"T {millis} is not a time") from None
        return Trade(
            _symbol(data), _integer(data, "t"), _decimal(data, "p"), _decimal(data, "q"), at
        )
    raise MalformedMessageError(f"unexpected stream {stream!r}")


def parse_exchange_info(body: Any, symbols: list[str]) -> dict[str, Scale]:
    """Each symbol's grid from an ``exchangeInfo`` answer; :class:`MalformedMessageError`
    naming what is missing."""
    if not isinstance(body, dict) or not isinstance(body.get("symbols"), list):
        raise MalformedMessageError("exchangeInfo has no symbols list")
    scales: dict[str, Scale] = {}
    for entry in body["symbols"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("filters"), list):
            raise MalformedMessageError("exchangeInfo symbol without filters")
        filters = {f.get("filterType"): f for f in entry["filters"] if isinstance(f, dict)}
        price, lot = filters.get("PRICE_FILTER"), filters.get("LOT_SIZE")
        if price is None or lot is None:
            raise MalformedMessageError(f"{entry.get('symbol')}: no PRICE_FILTER or LOT_SIZE")
        scales[str(entry.get("symbol"))] = Scale(
            _decimal(price, "tickSize").normalize(), _decimal(lot, "stepSize").normalize()
        )
    missing = [s for s in symbols if s not in scales]
    if missing:
        raise MalformedMessageError(f"exchangeInfo does not list {', '.join(missing)}")
    return scales


def _symbol(data: dict[str, Any]) -> str:
    value = data.get("s")
    if not isinstance(value, str) or not value:
        raise MalformedMessageError("no symbol (s)")
    return value.upper()


def _integer(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedMessageError(f"{key} is not an integer")
    return value


def _decimal(data: dict[str, Any], key: str) -> Decimal:
    value = data.get(key)
    if not isinstance(value, str):
        raise MalformedMessageError(f"{key} is not a decimal string")
    try:
        number = parse_plain_decimal(value)
    except NumberTextError:
        raise MalformedMessageError(f"{key} {value!r} is not a decimal number") from None
    if not number.is_finite() or number <= 0:
        raise MalformedMessageError(f"{key} {value!r} is not positive")
    return number
