"""The matcher's gate on a tick: a tick fills or triggers orders only when its symbol is
listed, not halted, and in session at the tick's own time — checked at the edges of a
US session across the autumn clock change (at fixed instants, never the wall clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from graphql_api.market.sessions import OffSessionOrders, TradingSession, parse_hours
from graphql_api.market.symbols import SymbolSpec
from graphql_api.trading.matcher import _trades

NASDAQ = TradingSession.create("America/New_York", parse_hours("MON-FRI 09:30-16:00"))
AAPL = SymbolSpec(
    "AAPL", "NASDAQ", "USD", Decimal("0.01"), Decimal(1), True, NASDAQ, OffSessionOrders.REST
)
SECOND = timedelta(seconds=1)


def test_a_tick_trades_from_the_open_to_the_second_before_the_close() -> None:
    # Friday 30 October 2026 (EDT, UTC-4): 09:30 is 13:30 UTC, 16:00 is 20:00 UTC
    opens, closes = (
        datetime(2026, 10, 30, 13, 30, tzinfo=UTC),
        datetime(2026, 10, 30, 20, tzinfo=UTC),
    )
    assert not _trades(AAPL, opens - SECOND)
    assert _trades(AAPL, opens)
    assert _trades(AAPL, opens + SECOND)
    assert _trades(AAPL, closes - SECOND)
    assert not _trades(AAPL, closes)


def test_after_the_clock_change_the_open_is_an_hour_later_in_utc_and_weekends_are_shut() -> None:
    # Monday 2 November 2026 (EST, UTC-5): 13:30 UTC, last week's open, is 08:30 in New York
    assert not _trades(AAPL, datetime(2026, 11, 2, 13, 30, tzinfo=UTC))
    opens = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    assert not _trades(AAPL, opens - SECOND)
    assert _trades(AAPL, opens)
    assert _trades(AAPL, opens + SECOND)
    for weekend in (datetime(2026, 10, 31, 15, tzinfo=UTC), datetime(2026, 11, 1, 15, tzinfo=UTC)):
        assert not _trades(AAPL, weekend)


def test_a_halted_or_unknown_symbol_never_trades() -> None:
    in_session = datetime(2026, 11, 2, 15, tzinfo=UTC)
    assert _trades(AAPL, in_session)
    assert not _trades(replace(AAPL, tradable=False), in_session)
    assert not _trades(None, in_session)
