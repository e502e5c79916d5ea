"""The simulated feed keeps its configured rate, also after it fell behind, and quotes
only the symbols whose session is open (unless told to ignore sessions)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from graphql_api.market.sessions import (
    ALWAYS_OPEN_UTC,
    OffSessionOrders,
    TradingSession,
    parse_hours,
)
from graphql_api.market.simulated_feed import RandomWalk, run_simulated_feed
from graphql_api.market.symbols import SymbolSpec
from graphql_api.server.runtime import open_services
from tests.conftest import make_settings, sql_database


async def test_a_feed_that_fell_behind_skips_ahead_instead_of_bursting(
    request: pytest.FixtureRequest,
) -> None:
    async with (
        sql_database(request, "sqlite") as url,
        open_services(make_settings(url, MATCHER_ENABLED=False)) as services,
    ):
        specs = services.catalog.all()
        walk = RandomWalk(specs, {spec.code: spec.tick_size * 1000 for spec in specs}, seed=1)
        feed = asyncio.create_task(run_simulated_feed(walk, services.ingestor, ticks_per_second=50))
        try:
            await asyncio.sleep(0.5)
            # given a stall of 1.5 s (the whole process paused: a blocked loop, a slow store)
            time.sleep(1.5)  # noqa: ASYNC251 - the stall under test blocks the loop
            # when the feed runs on for a second
            before = services.ingestor.written
            await asyncio.sleep(1.0)
            after_stall = services.ingestor.written - before
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
    # then it emitted about 50 ticks (one slice at once, then the usual pace), not
    # 50 plus a replay of the 75 it missed
    assert 20 <= after_stall <= 70, after_stall


def _spec(code: str, session: TradingSession) -> SymbolSpec:
    return SymbolSpec(
        code, "SSE", "CNY", Decimal("0.01"), Decimal(100), True, session, OffSessionOrders.REFUSE
    )


SHANGHAI = TradingSession.create("Asia/Shanghai", parse_hours("MON-FRI 09:30-11:30 13:00-15:00"))
SPECS = [_spec("600519.SH", SHANGHAI), _spec("BTCUSDT", ALWAYS_OPEN_UTC)]
PRICES = {"600519.SH": Decimal("1500.00"), "BTCUSDT": Decimal("95000.00")}
# Thursday 3 December 2026: 10:00 and 12:00 (the lunch break) in Shanghai
MORNING = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
LUNCH = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)


def quoted(walk: RandomWalk, at: datetime) -> set[str]:
    """The symbols of 200 ticks at ``at``."""
    return {tick.symbol for _ in range(200) if (tick := walk.next_tick(at)) is not None}


def test_the_walk_quotes_only_symbols_whose_session_is_open() -> None:
    walk = RandomWalk(SPECS, PRICES, seed=3)
    assert quoted(walk, MORNING) == {"600519.SH", "BTCUSDT"}
    assert quoted(walk, LUNCH) == {"BTCUSDT"}
    shanghai_only = RandomWalk(SPECS[:1], PRICES, seed=3)
    assert shanghai_only.next_tick(LUNCH) is None


def test_a_walk_that_ignores_sessions_quotes_every_symbol_at_any_hour() -> None:
    walk = RandomWalk(SPECS, PRICES, seed=3, ignore_sessions=True)
    assert quoted(walk, LUNCH) == {"600519.SH", "BTCUSDT"}


def test_the_walk_follows_a_changed_session() -> None:
    current = {"600519.SH": _spec("600519.SH", ALWAYS_OPEN_UTC)}
    walk = RandomWalk(SPECS[:1], PRICES, seed=3, current=current.get)
    tick = walk.next_tick(LUNCH)
    assert tick is not None and tick.symbol == "600519.SH"
