"""The instrument service on the embedded database and the in-process bus: one
transaction per change, announced to every catalogue that follows the bus; and the
draft rules on their own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from graphql_api.instruments import (
    Actor,
    InstrumentService,
    SessionDraft,
    SymbolChanges,
    SymbolDraft,
)
from graphql_api.instruments.drafts import canonical_step, check_draft
from graphql_api.market.sessions import OffSessionOrders, TradingSession, parse_hours
from graphql_api.market.symbols import SymbolCatalog, SymbolSpec
from graphql_api.platform.errors import ErrorCode
from graphql_api.realtime.channels import SYMBOL_CHANGES_CHANNEL
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from storage import models
from storage.repositories import symbols as symbol_repo
from storage.timeseries import Tick
from tests.graphql_api.conftest import Embedded

D = Decimal
NASDAQ = TradingSession.create("America/New_York", parse_hours("MON-FRI 09:30-16:00"))
NASDAQ_DRAFT = SessionDraft.of(NASDAQ, OffSessionOrders.REFUSE)
ROOT = Actor(None, "cli:test")
START_CASH = D("5000")


def draft(**overrides: object) -> SymbolDraft:
    values: dict[str, object] = {
        "code": "AAPL",
        "name": "Apple Inc.",
        "exchange": "NASDAQ",
        "currency": "USD",
        "tick_size": D("0.01"),
        "lot_size": D("1"),
        "session": NASDAQ_DRAFT,
    }
    values.update(overrides)
    return SymbolDraft(**values)  # type: ignore[arg-type]


def service(embedded: Embedded, start_cash: Decimal = START_CASH) -> InstrumentService:
    return InstrumentService(embedded.sessions, embedded.catalog, embedded.outbox, start_cash)


@contextlib.asynccontextmanager
async def other_process(embedded: Embedded) -> AsyncIterator[SymbolCatalog]:
    """Another process's catalogue on the same bus and database, following changes."""
    catalog = SymbolCatalog(embedded.sessions)
    await catalog.load()
    follower = asyncio.create_task(catalog.follow(embedded.hub))
    try:
        await asyncio.sleep(0.05)  # subscribed
        yield catalog
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - waits on the follower task
            await asyncio.sleep(0.01)


async def test_changes_reach_every_catalogue_through_the_bus(embedded: Embedded) -> None:
    instruments = service(embedded)
    async with other_process(embedded) as elsewhere:
        seen: list[SymbolSpec] = []
        elsewhere.on_change(seen.append)
        # when a symbol is listed, halted and given a new tick size here
        assert (await instruments.create(ROOT, draft())).errors == []
        assert (await instruments.set_tradable(ROOT, "AAPL", False)).errors == []
        changes = SymbolChanges(tick_size=D("0.05"))
        assert (await instruments.update(ROOT, "AAPL", changes)).errors == []
        # then this process knows at once, before anything is on the bus
        assert embedded.catalog.cached("AAPL") == SymbolSpec(
            "AAPL", "NASDAQ", "USD", D("0.05"), D("1"), False, NASDAQ, OffSessionOrders.REFUSE
        )
        assert elsewhere.cached("AAPL") is None
        # and the other process once the relay has put the events on the bus
        assert await embedded.outbox.relay_once() == 3
        await until(lambda: elsewhere.cached("AAPL") == embedded.catalog.cached("AAPL"))
        assert seen[-1].tick_size == D("0.05")


async def test_refused_changes_write_and_announce_nothing(embedded: Embedded) -> None:
    instruments = service(embedded)
    refused = [
        await instruments.create(ROOT, draft(code="BTCUSDT")),
        await instruments.create(ROOT, draft(tick_size=D("-1"), name="")),
        await instruments.update(ROOT, "NOPE", SymbolChanges(name="x")),
        await instruments.update(ROOT, "BTCUSDT", SymbolChanges(lot_size=D("NaN"))),
        await instruments.set_tradable(ROOT, "NOPE", False),
        await instruments.set_tradable(ROOT, "BTCUSDT", True),  # already tradable: no change
    ]
    assert [outcome.errors != [] for outcome in refused] == [True] * 5 + [False]
    assert await embedded.outbox.backlog() == 0
    async with embedded.sessions() as session:
        audited = await session.scalar(select(func.count()).select_from(models.SymbolAudit))
    assert audited == 0


async def test_a_new_currency_opens_a_balance_for_every_user_in_the_same_transaction(
    embedded: Embedded,
) -> None:
    async with embedded.sessions() as session:
        users = await session.scalar(select(func.count()).select_from(models.User))
    outcome = await service(embedded, D("250000")).create(ROOT, draft())
    assert outcome.errors == []
    async with embedded.sessions() as session:
        balances = list(
            await session.scalars(
                select(models.CashBalance).where(models.CashBalance.currency == "USD")
            )
        )
        [audit] = list(await session.scalars(select(models.SymbolAudit)))
    assert len(balances) == users
    assert {balance.amount for balance in balances} == {D("250000")}
    assert (audit.action, audit.actor_id, audit.actor_name) == ("CREATE", None, "cli:test")
    assert audit.at.tzinfo is not None
    # a second symbol in USD leaves the balances as they are
    await service(embedded, D("1")).create(ROOT, draft(code="MSFT", name="Microsoft"))
    async with embedded.sessions() as session:
        amounts = set(
            await session.scalars(
                select(models.CashBalance.amount).where(models.CashBalance.currency == "USD")
            )
        )
    assert amounts == {D("250000")}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("0.010", "0.01"),
        ("100", "100"),
        ("1E+2", "100"),
        ("0.00001", "0.00001"),
        ("5", "5"),
        ("1.50", "1.5"),
    ],
)
def test_steps_are_stored_without_trailing_zeros_and_never_change_value(
    given: str, stored: str
) -> None:
    assert format(canonical_step(D(given)), "f") == stored
    assert canonical_step(D(given)) == D(given)


def test_a_draft_reports_every_problem_at_once() -> None:
    _, errors = check_draft(
        draft(
            code="",
            name="",
            exchange="",
            currency="",
            tick_size=D("0"),
            lot_size=D("Infinity"),
            session=SessionDraft("Mars/Olympus", ()),
        )
    )
    assert {(error.field, error.code) for error in errors} == {
        ("code", ErrorCode.INVALID),
        ("name", ErrorCode.OUT_OF_RANGE),
        ("exchange", ErrorCode.INVALID),
        ("currency", ErrorCode.INVALID),
        ("tickSize", ErrorCode.OUT_OF_RANGE),
        ("lotSize", ErrorCode.OUT_OF_RANGE),
        ("session.timezone", ErrorCode.INVALID),
    }


class CrashError(Exception):
    """Stands for any failure late in a change's transaction (here: writing the audit)."""


def crash(*_args: object, **_kwargs: object) -> None:
    raise CrashError


async def test_a_change_that_fails_late_leaves_nothing_behind(
    embedded: Embedded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a resting order that a new tick size would cancel
    await embedded.store.write_ticks([tick("BTCUSDT", "95000.00")])
    placed = await embedded.orders.place_order(
        embedded.demo_user_id,
        OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, D("0.01"), D("94000.50")),
    )
    assert placed.order is not None and placed.order.status == "NEW"
    backlog = await embedded.outbox.backlog()
    # when writing the audit fails, after the symbol, balances and cancellations were staged
    monkeypatch.setattr(symbol_repo, "add_audit", crash)
    instruments = service(embedded)
    with pytest.raises(CrashError):
        await instruments.create(ROOT, draft())
    with pytest.raises(CrashError):
        await instruments.update(ROOT, "BTCUSDT", SymbolChanges(tick_size=D("1")))
    with pytest.raises(CrashError):
        await instruments.set_tradable(ROOT, "BTCUSDT", False)
    # then none of it was written, and nothing was announced
    async with embedded.sessions() as session:
        assert await session.get(models.Symbol, "AAPL") is None
        usd = await session.scalar(
            select(func.count())
            .select_from(models.CashBalance)
            .where(models.CashBalance.currency == "USD")
        )
        bitcoin = await session.get(models.Symbol, "BTCUSDT")
        order = await session.get(models.Order, placed.order.id)
    assert usd == 0
    assert bitcoin is not None and (bitcoin.tick_size, bitcoin.tradable) == (D("0.01"), True)
    assert order is not None and (order.status, order.version) == ("NEW", placed.order.version)
    assert await embedded.outbox.backlog() == backlog
    assert embedded.catalog.cached("AAPL") is None
    spec = embedded.catalog.cached("BTCUSDT")
    assert spec is not None and (spec.tick_size, spec.tradable) == (D("0.01"), True)


def tick(symbol: str, price: str) -> Tick:
    value = D(price)
    return Tick(symbol, datetime.now(UTC), value, value, value, D(1))


async def test_a_catalogue_that_falls_behind_the_bus_reloads_everything_and_goes_on(
    embedded: Embedded,
) -> None:
    catalog = SymbolCatalog(embedded.sessions)
    await catalog.load()
    follower = asyncio.create_task(catalog.follow(embedded.hub, capacity=3))
    try:
        await asyncio.sleep(0.05)  # subscribed
        # given a symbol listed behind the follower's back, and a burst of announcements
        # larger than its mailbox, in which that symbol's own announcement is missing
        async with embedded.sessions() as session:
            session.add(
                models.Symbol(
                    code="QUIET",
                    name="Quiet",
                    exchange="NASDAQ",
                    currency="USD",
                    tick_size=D("0.01"),
                    lot_size=D("1"),
                    tradable=True,
                    trading_session=NASDAQ.to_json(),
                )
            )
            await session.commit()
        await embedded.hub.publish_many([(SYMBOL_CHANGES_CHANNEL, "BTCUSDT")] * 20)
        # then it reloads everything, and still follows what comes next
        await until(lambda: catalog.cached("QUIET") is not None)
        assert (await service(embedded).create(ROOT, draft())).errors == []
        await embedded.outbox.relay_once()
        await until(lambda: catalog.cached("AAPL") is not None)
        assert not follower.done()
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
