"""Orders and trading sessions, on SQLite and PostgreSQL.

An order placed while its symbol's session is closed is REJECTED with
MARKET_CLOSED (policy REFUSE) or accepted to wait for the open (REST); no tick
outside the session fills anything; DAY orders expire at the trading day's close.

Placement reads the server's clock, so the symbols here get a session that is
closed now whatever the hour: one hour-long window a week, opening two hours from
now (weekly windows recur seven days apart: the last one ended days ago). The
matcher is the test's own and ticks are handed to it at chosen instants.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from graphql_api.instruments import Actor, SessionDraft, SymbolChanges, SymbolDraft
from graphql_api.instruments.drafts import WindowDraft
from graphql_api.market.sessions import (
    OffSessionOrders,
    TradingSession,
    Weekday,
    format_minute,
    parse_hours,
)
from graphql_api.market.symbols import SymbolSpec
from graphql_api.platform.errors import ErrorCode
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType, TimeInForce
from graphql_api.trading.placement import expires_at
from storage.timeseries import Tick
from tests.conftest import make_settings
from tests.graphql_api.trading.test_matcher import order_row
from tests.graphql_api.trading.test_matcher_rules import matcher_for

ROOT = Actor(None, "cli:test")
SECOND = timedelta(seconds=1)


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    settings = make_settings(database_url, MATCHER_ENABLED="false")
    async with open_services(settings) as running:
        yield running


@dataclass(frozen=True)
class ClosedNow:
    """A session closed now: its only window opens at ``opens`` and closes at ``closes``."""

    draft: SessionDraft
    opens: datetime
    closes: datetime


def closed_now(policy: OffSessionOrders) -> ClosedNow:
    opens = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    window = WindowDraft(
        frozenset({Weekday(opens.weekday())}),
        format_minute(opens.hour * 60 + opens.minute),
        format_minute(closes.hour * 60 + closes.minute),
    )
    return ClosedNow(SessionDraft("UTC", (window,), policy), opens, closes)


async def list_symbol(services: Services, code: str, session: SessionDraft) -> None:
    draft = SymbolDraft(code, code, "SSE", "CNY", Decimal("0.01"), Decimal("100"), session)
    assert (await services.instruments.create(ROOT, draft)).errors == []
    # a quote, so LIMIT orders have a price band (ticks are stored at any hour)
    await services.ingestor.ingest([at(datetime.now(UTC), code, "10.00")])


def at(time: datetime, symbol: str, price: str) -> Tick:
    value = Decimal(price)
    return Tick(symbol, time, value, value, value, Decimal(100000))


def limit_buy(symbol: str, time_in_force: TimeInForce = TimeInForce.GTC) -> OrderRequest:
    return OrderRequest(
        symbol, OrderSide.BUY, OrderType.LIMIT, Decimal(100), Decimal("10.00"), time_in_force
    )


async def test_a_closed_market_refuses_orders_with_market_closed(services: Services) -> None:
    # given a symbol whose session is closed now and refuses off-session orders
    await list_symbol(services, "SHUT.SH", closed_now(OffSessionOrders.REFUSE).draft)
    # when an order is placed
    outcome = await services.orders.place_order(services.demo_user_id, limit_buy("SHUT.SH"))
    # then it is kept as REJECTED with the reason, and reserves nothing
    assert outcome.errors == []
    assert outcome.order is not None
    assert (outcome.order.status, outcome.order.reject_reason) == ("REJECTED", "MARKET_CLOSED")


async def test_a_resting_policy_accepts_and_nothing_fills_before_the_open(
    services: Services,
) -> None:
    # given a symbol closed now whose off-session orders rest until the open
    session = closed_now(OffSessionOrders.REST)
    await list_symbol(services, "WAIT.SH", session.draft)
    matcher = matcher_for(services)
    # when a DAY order is placed now
    outcome = await services.orders.place_order(
        services.demo_user_id, limit_buy("WAIT.SH", TimeInForce.DAY)
    )
    order = outcome.order
    assert order is not None and (order.status, order.reject_reason) == ("NEW", None)
    # then it expires at the close of the trading day it waits for
    assert order.expires_at is not None
    assert order.expires_at.replace(tzinfo=UTC) == session.closes
    await matcher.resync()
    # crossing ticks while the market is closed fill nothing, up to the second before
    for moment in (datetime.now(UTC), session.opens - SECOND):
        await matcher.on_tick(at(moment, "WAIT.SH", "9.90"))
        assert (await order_row(services, order.id)).status == "NEW", moment
    # and the first tick at the open fills it
    await matcher.on_tick(at(session.opens, "WAIT.SH", "9.95"))
    filled = await order_row(services, order.id)
    assert (filled.status, filled.average_fill_price) == ("FILLED", Decimal("9.95"))


async def test_a_day_order_expires_at_the_trading_days_close(services: Services) -> None:
    session = closed_now(OffSessionOrders.REST)
    await list_symbol(services, "DAY.SH", session.draft)
    matcher = matcher_for(services)
    outcome = await services.orders.place_order(
        services.demo_user_id, limit_buy("DAY.SH", TimeInForce.DAY)
    )
    assert outcome.order is not None
    await matcher.resync()
    # the second before the close it still rests; at the close it expires
    await matcher.expire_day_orders(session.closes - SECOND)
    assert (await order_row(services, outcome.order.id)).status == "NEW"
    await matcher.expire_day_orders(session.closes)
    assert (await order_row(services, outcome.order.id)).status == "EXPIRED"


async def test_a_closed_refusing_market_refuses_amendments_too(services: Services) -> None:
    # given an order resting on a symbol that then gets a closed, refusing session
    closed = closed_now(OffSessionOrders.REST)
    await list_symbol(services, "AMND.SH", closed.draft)
    outcome = await services.orders.place_order(services.demo_user_id, limit_buy("AMND.SH"))
    assert outcome.order is not None and outcome.order.status == "NEW"
    refusing = SessionDraft("UTC", closed.draft.windows, OffSessionOrders.REFUSE)
    changed = await services.instruments.update(ROOT, "AMND.SH", SymbolChanges(session=refusing))
    assert changed.errors == [] and changed.canceled_orders == 0  # resting orders stay
    # when it is amended, then it is refused and unchanged
    amended = await services.orders.amend_order(
        services.demo_user_id, outcome.order.id, limit_price=Decimal("9.99")
    )
    assert [error.code for error in amended.errors] == [ErrorCode.MARKET_CLOSED]
    assert (await order_row(services, outcome.order.id)).limit_price == Decimal("10.00")


# --- when DAY orders expire, at fixed instants ---------------------------------

NASDAQ = TradingSession.create("America/New_York", parse_hours("MON-FRI 09:30-16:00"))
AAPL = SymbolSpec(
    "AAPL", "NASDAQ", "USD", Decimal("0.01"), Decimal(1), True, NASDAQ, OffSessionOrders.REST
)


@pytest.mark.parametrize(
    ("placed", "expires"),
    [
        # Monday 9 March 2026, 11:00 EDT: the close today, 16:00 EDT = 20:00 UTC
        (datetime(2026, 3, 9, 15, 0, tzinfo=UTC), datetime(2026, 3, 9, 20, 0, tzinfo=UTC)),
        # before Monday's open: Monday's close
        (datetime(2026, 3, 9, 12, 0, tzinfo=UTC), datetime(2026, 3, 9, 20, 0, tzinfo=UTC)),
        # after Friday's close (EST, 21:00 UTC), across the clock change: Monday's, EDT
        (datetime(2026, 3, 6, 21, 0, tzinfo=UTC), datetime(2026, 3, 9, 20, 0, tzinfo=UTC)),
        # the second before Friday's close: Friday's
        (datetime(2026, 3, 6, 20, 59, 59, tzinfo=UTC), datetime(2026, 3, 6, 21, 0, tzinfo=UTC)),
    ],
)
def test_a_day_order_expires_at_the_close_of_its_trading_day(
    placed: datetime, expires: datetime
) -> None:
    request = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, Decimal(1), Decimal(180))
    day = replace(request, time_in_force=TimeInForce.DAY)
    assert expires_at(day, AAPL, placed) == expires
    assert expires_at(request, AAPL, placed) is None  # GTC never expires
