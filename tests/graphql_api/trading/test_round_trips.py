"""Round trips rebuilt from fills: flat to flat, flips split exactly, per symbol."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from graphql_api.trading.round_trips import round_trips

START = datetime(2026, 3, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Fill:
    id: int
    symbol_code: str
    side: str
    quantity: Decimal
    commission: Decimal
    realized_pnl: Decimal
    tick_time: datetime


def fill(minute: int, side: str, quantity: str, pnl: str = "0", fee: str = "1") -> Fill:
    return Fill(
        minute + 1,
        "BTCUSDT",
        side,
        Decimal(quantity),
        Decimal(fee),
        Decimal(pnl),
        START + timedelta(minutes=minute),
    )


def test_a_long_opened_in_two_fills_and_closed_in_two_is_one_round_trip() -> None:
    trips = round_trips(
        [
            fill(0, "BUY", "1"),
            fill(1, "BUY", "2"),
            fill(2, "SELL", "1", pnl="10"),
            fill(3, "SELL", "2", pnl="-4"),
        ]
    )
    assert len(trips) == 1
    trip = trips[0]
    assert (trip.side, trip.quantity, trip.opened_at, trip.closed_at) == (
        "LONG",
        Decimal(3),
        START,
        START + timedelta(minutes=3),
    )
    assert trip.realized_pnl == Decimal(6) and trip.commission == Decimal(4)
    assert trip.net_pnl == Decimal(2)


def test_a_fill_through_flat_closes_one_trip_and_opens_the_next_splitting_its_fee() -> None:
    trips = round_trips(
        [
            fill(0, "BUY", "1", fee="2"),
            fill(1, "SELL", "4", pnl="5", fee="8"),  # closes 1, opens a short of 3
            fill(2, "BUY", "3", pnl="-3", fee="6"),
        ]
    )
    assert [(t.side, t.quantity) for t in trips] == [("LONG", Decimal(1)), ("SHORT", Decimal(3))]
    long, short = trips
    assert long.commission == Decimal(4) and long.realized_pnl == Decimal(5)  # 2 + 8 * 1/4
    assert short.commission == Decimal(12) and short.realized_pnl == Decimal(-3)  # 8 * 3/4 + 6
    assert short.opened_at == START + timedelta(minutes=1)


def test_symbols_are_walked_apart_and_an_open_trip_is_not_listed() -> None:
    other = Fill(100, "ETHUSDT", "BUY", Decimal(1), Decimal(0), Decimal(0), START)
    trips = round_trips([fill(0, "BUY", "1"), other, fill(1, "SELL", "1", pnl="1")])
    assert [t.symbol_code for t in trips] == ["BTCUSDT"]


def test_a_reset_drops_the_trip_open_at_that_moment_and_walks_on_from_flat() -> None:
    fills = [fill(0, "BUY", "1"), fill(1, "SELL", "1", pnl="3"), fill(2, "BUY", "2")]
    after = [fill(5, "SELL", "1"), fill(6, "BUY", "1", pnl="-1")]  # a short, from flat
    trips = round_trips(fills + after, resets=[3])  # reset after the third fill
    assert [(t.side, t.quantity) for t in trips] == [("LONG", Decimal(1)), ("SHORT", Decimal(1))]


@given(st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 5)), max_size=30))
def test_every_fee_and_every_pnl_lands_in_exactly_one_trip_or_the_open_one(
    steps: list[tuple[str, int]],
) -> None:
    fills = [
        fill(minute, side, str(quantity), pnl=str(minute), fee=str(quantity))
        for minute, (side, quantity) in enumerate(steps)
    ]
    trips = round_trips(fills)
    position = sum(Decimal(q) if s == "BUY" else -Decimal(q) for s, q in steps)
    fees = sum((f.commission for f in fills), Decimal(0))
    if position == 0:  # everything closed: every fee and every P&L is in a trip
        assert sum((t.commission for t in trips), Decimal(0)) == fees
        assert sum((t.realized_pnl for t in trips), Decimal(0)) == sum(
            (f.realized_pnl for f in fills), Decimal(0)
        )
    else:
        assert sum((t.commission for t in trips), Decimal(0)) <= fees
    assert all(t.quantity > 0 and t.opened_at <= t.closed_at for t in trips)
    assert [t.closed_at for t in trips] == sorted(t.closed_at for t in trips)
