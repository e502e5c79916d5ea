"""The realtime wire format: JSON text with decimals as strings and times in ISO 8601 UTC.

Events cross process boundaries (Redis), so what comes out of a decode must be
exactly what went into the encode: every digit of every decimal, and the same
aware UTC instant.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from graphql_api.realtime.events import (
    decode_id_event,
    decode_tick,
    encode_closed_order,
    encode_id_event,
    encode_new_order,
    encode_tick,
)
from storage import models
from storage.timeseries import Tick

D = Decimal
TIME = datetime(2025, 6, 2, 7, 0, 0, 123456, tzinfo=UTC)


def test_a_tick_survives_the_wire_digit_for_digit() -> None:
    tick = Tick("BTCUSDT", TIME, D("95000.10"), D("94999.99"), D("95000.11"), D("0.00001"))
    decoded = decode_tick(encode_tick(tick))
    assert decoded == tick
    # not just equal in value: trailing zeros and exponents are kept as sent
    assert [str(v) for v in (decoded.last, decoded.volume)] == ["95000.10", "0.00001"]
    assert decoded.time.utcoffset() == timedelta(0)
    assert decoded.time.microsecond == 123456


def test_a_tick_is_compact_json_with_decimals_as_strings() -> None:
    message = encode_tick(Tick("600519.SH", TIME, D("0.1"), D("0.1"), D("0.3"), D("1E+3")))
    assert " " not in message
    assert json.loads(message) == {
        "symbol": "600519.SH",
        "time": "2025-06-02T07:00:00.123456+00:00",
        "last": "0.1",
        "bid": "0.1",
        "ask": "0.3",
        "volume": "1E+3",
    }


decimals = st.decimals(allow_nan=False, allow_infinity=False, places=10).filter(
    lambda value: abs(value) < D("1e18")
)
aware_times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)


@given(decimals, decimals, decimals, decimals, aware_times)
def test_any_tick_round_trips_exactly(
    last: Decimal, bid: Decimal, ask: Decimal, volume: Decimal, time: datetime
) -> None:
    tick = Tick("X", time, last, bid, ask, volume)
    decoded = decode_tick(encode_tick(tick))
    assert decoded == tick
    assert [v.as_tuple() for v in (decoded.last, decoded.bid, decoded.ask, decoded.volume)] == [
        v.as_tuple() for v in (last, bid, ask, volume)
    ]
    assert decoded.time.tzinfo is not None and decoded.time.utcoffset() == timedelta(0)


def test_an_id_event_carries_its_extra_fields() -> None:
    message = encode_id_event("order", 42, status="FILLED", version=3)
    assert message == '{"kind":"order","id":42,"status":"FILLED","version":3}'
    assert decode_id_event(message) == {"kind": "order", "id": 42, "status": "FILLED", "version": 3}


def order(**fields: object) -> models.Order:
    values: dict[str, object] = {
        "id": 7,
        "user_id": 1,
        "symbol_code": "600519.SH",
        "side": "BUY",
        "type": "LIMIT",
        "time_in_force": "DAY",
        "quantity": D("300"),
        "filled_quantity": D("100"),
        "limit_price": D("1500.10"),
        "version": 2,
        "expires_at": TIME + timedelta(hours=8),
        "created_at": TIME,
    }
    values.update(fields)
    return models.Order(**values)


def test_a_new_order_tells_the_matcher_everything_it_books_on() -> None:
    decoded = decode_id_event(encode_new_order(order()))
    assert decoded == {
        "kind": "order",
        "id": 7,
        "symbol": "600519.SH",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "DAY",
        "limitPrice": "1500.10",
        "remaining": "200",  # quantity less what is filled
        "version": 2,
        "expiresAt": "2025-06-02T15:00:00.123456+00:00",
        "createdAt": "2025-06-02T07:00:00.123456+00:00",
        # never amended to the back of its queue: it ranks by its id
        "queueAnchor": None,
        "queuedAt": None,
        "stopPrice": None,
        "triggered": False,
    }
    assert datetime.fromisoformat(decoded["createdAt"]) == TIME
    assert D(decoded["limitPrice"]) == D("1500.10")


def test_a_canceled_order_tells_the_matcher_which_copy_to_drop() -> None:
    decoded = decode_id_event(encode_closed_order(order(status="CANCELED")))
    assert decoded == {"kind": "closed", "id": 7, "symbol": "600519.SH", "version": 2}


def test_a_market_order_without_expiry_sends_nulls() -> None:
    market = order(
        type="MARKET",
        time_in_force="GTC",
        limit_price=None,
        expires_at=None,
        quantity=D("0.00001"),
        filled_quantity=D(0),
    )
    decoded = decode_id_event(encode_new_order(market))
    assert (decoded["limitPrice"], decoded["expiresAt"]) == (None, None)
    assert decoded["remaining"] == "0.00001"
