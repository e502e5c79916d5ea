"""Tick validation: each bad price, size or time is refused with its code, at its path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from graphql_api.market.sessions import OffSessionOrders
from graphql_api.market.symbols import SymbolSpec
from graphql_api.market.tick_validation import TickDraft, check_tick
from graphql_api.market.value_ranges import TimeWindow
from graphql_api.platform.errors import ErrorCode
from graphql_api.server.demo_data import A_SHARE_DEMO_SESSION
from storage.timeseries import Tick

D = Decimal
SPEC = SymbolSpec(
    "600519.SH",
    "SSE",
    "CNY",
    D("0.01"),
    D("100"),
    True,
    A_SHARE_DEMO_SESSION,
    OffSessionOrders.REFUSE,
)
NOW = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
WINDOW = TimeWindow.around(NOW, max_age_years=30, max_future=timedelta(seconds=5))


def draft(**fields: object) -> TickDraft:
    values: dict[str, object] = {
        "symbol": "600519.SH",
        "time": NOW,
        "last": D("1500.00"),
        "bid": D("1499.99"),
        "ask": D("1500.01"),
        "volume": D("300"),
    }
    values.update(fields)
    return TickDraft(**values)  # type: ignore[arg-type]


def problems(candidate: TickDraft) -> list[tuple[str, ErrorCode]]:
    tick, errors = check_tick(candidate, SPEC, WINDOW, "ticks.3")
    assert (tick is None) == bool(errors)
    return [(error.field, error.code) for error in errors]


def test_a_good_tick_comes_back_in_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    tick, errors = check_tick(
        draft(time=datetime(2025, 6, 2, 15, 0, tzinfo=beijing)), SPEC, WINDOW, "ticks.0"
    )
    assert errors == []
    prices = (D("1500.00"), D("1499.99"), D("1500.01"))
    assert tick == Tick("600519.SH", NOW - timedelta(hours=1), *prices, D("300"))
    assert tick is not None and tick.time.tzinfo is UTC


def test_a_missing_bid_or_ask_is_the_last_price() -> None:
    tick, errors = check_tick(draft(bid=None, ask=None), SPEC, WINDOW, "ticks.0")
    assert errors == []
    assert tick is not None and (tick.bid, tick.ask) == (D("1500.00"), D("1500.00"))


def test_an_unknown_symbol_is_refused_before_anything_else() -> None:
    tick, errors = check_tick(draft(symbol="NOPE", last=D(-1)), None, WINDOW, "ticks.3")
    assert tick is None
    assert [(e.field, e.code) for e in errors] == [("ticks.3.symbol", ErrorCode.UNKNOWN_SYMBOL)]


def test_a_time_without_an_offset_is_refused() -> None:
    assert problems(draft(time=datetime(2025, 6, 2, 8, 0))) == [("ticks.3.time", ErrorCode.INVALID)]


def test_times_outside_the_window_are_out_of_range_and_its_edges_are_inside() -> None:
    assert problems(draft(time=NOW + timedelta(seconds=5))) == []
    assert problems(draft(time=NOW + timedelta(seconds=5, microseconds=1))) == [
        ("ticks.3.time", ErrorCode.OUT_OF_RANGE)
    ]
    assert problems(draft(time=datetime(1995, 6, 2, 8, 0, tzinfo=UTC))) == []
    assert problems(draft(time=datetime(1995, 6, 2, 7, 59, tzinfo=UTC))) == [
        ("ticks.3.time", ErrorCode.OUT_OF_RANGE)
    ]
    # a year-1 time with a positive offset has no UTC equivalent: refused, not crashed
    ancient = datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert problems(draft(time=ancient)) == [("ticks.3.time", ErrorCode.OUT_OF_RANGE)]


@pytest.mark.parametrize("price", ["0", "-0.01", "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("name", ["last", "bid", "ask"])
def test_prices_must_be_positive_and_finite(name: str, price: str) -> None:
    assert (f"ticks.3.{name}", ErrorCode.OUT_OF_RANGE) in problems(draft(**{name: D(price)}))


@pytest.mark.parametrize("name", ["last", "bid", "ask"])
def test_prices_must_sit_on_the_tick_grid(name: str) -> None:
    off_grid = {"last": D("1500.005"), "bid": D("1499.985"), "ask": D("1500.015")}
    assert problems(draft(**{name: off_grid[name]})) == [
        (f"ticks.3.{name}", ErrorCode.INVALID_PRECISION)
    ]


def test_prices_the_stores_could_not_keep_exactly_are_refused() -> None:
    # at most 18 digits before the point, and 10 after
    huge = D("1" + "0" * 18)
    assert problems(draft(last=huge, bid=huge, ask=huge)) == [
        ("ticks.3.last", ErrorCode.OUT_OF_RANGE),
        ("ticks.3.bid", ErrorCode.OUT_OF_RANGE),
        ("ticks.3.ask", ErrorCode.OUT_OF_RANGE),
    ]
    assert problems(draft(last=D("1500.00000000001"))) == [
        ("ticks.3.last", ErrorCode.INVALID_PRECISION)
    ]


def test_a_crossed_book_is_refused_at_the_bid() -> None:
    assert problems(draft(bid=D("1500.02"), ask=D("1500.01"))) == [
        ("ticks.3.bid", ErrorCode.INVALID)
    ]
    assert problems(draft(bid=D("1500.01"), ask=D("1500.01"))) == []


@pytest.mark.parametrize(
    ("volume", "code"),
    [
        ("-1", ErrorCode.OUT_OF_RANGE),
        ("NaN", ErrorCode.OUT_OF_RANGE),
        ("Infinity", ErrorCode.OUT_OF_RANGE),
        ("1" + "0" * 18, ErrorCode.OUT_OF_RANGE),
        ("0.00000000001", ErrorCode.INVALID_PRECISION),
    ],
)
def test_volumes_must_be_finite_not_negative_and_storable(volume: str, code: ErrorCode) -> None:
    assert problems(draft(volume=D(volume))) == [("ticks.3.volume", code)]


def test_a_zero_volume_quote_update_is_a_tick() -> None:
    assert problems(draft(volume=D(0))) == []


def test_every_problem_of_a_tick_is_reported_at_once() -> None:
    bad = draft(
        time=NOW + timedelta(days=1), last=D(0), bid=D("1500.02"), ask=D("1500.015"), volume=D(-5)
    )
    assert problems(bad) == [
        ("ticks.3.time", ErrorCode.OUT_OF_RANGE),
        ("ticks.3.last", ErrorCode.OUT_OF_RANGE),
        ("ticks.3.ask", ErrorCode.INVALID_PRECISION),
        ("ticks.3.bid", ErrorCode.INVALID),
        ("ticks.3.volume", ErrorCode.OUT_OF_RANGE),
    ]
