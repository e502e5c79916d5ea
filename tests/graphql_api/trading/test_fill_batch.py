"""Fills in batches: one transaction, the same results as one fill at a time.

Two traders with identical accounts place identical orders on one database;
one trader's fills go through :func:`apply_fill` one transaction each (the
reference, the way the matcher used to write them), the other's through one
:class:`FillBatch`. Cash, positions, trades and orders must agree to the last
unit. Then the matcher: an order that moved in the middle of a tick's batch is
skipped while the others apply, a batch the write-time fence trips is redone,
and the ``orderUpdates`` announcements are staged in decision order, in the
batch's transaction.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from graphql_api.realtime.channels import order_channel
from graphql_api.realtime.events import decode_id_event
from graphql_api.trading.fill_batch import FillBatch, StaleBatchError
from graphql_api.trading.fills import apply_fill
from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType, TimeInForce
from storage import models
from storage.timeseries import Tick
from tests.graphql_api.conftest import POLICY, Embedded, open_embedded

D = Decimal
SYMBOL = "600519.SH"  # tick 0.01, lot 100, CNY
LOT = D(100)
QUOTE = D("1500.00")


@dataclass(frozen=True, slots=True)
class OrderSpec:
    side: OrderSide
    type: OrderType
    lots: int
    limit: Decimal | None


@dataclass(frozen=True, slots=True)
class FillSpec:
    order: int  # index into the placed orders
    lots: int
    price: Decimal


@pytest.fixture
async def parts(database_url: str) -> AsyncIterator[Embedded]:
    async with open_embedded(database_url) as embedded:
        yield embedded


async def new_trader(parts: Embedded, name: str) -> int:
    """A trader with 1,000,000 CNY and 1,000 shares of SYMBOL (so sells can fill)."""
    now = datetime.now(UTC)
    async with parts.sessions() as session:
        user = models.User(username=name, role="TRADER", created_at=now)
        session.add(user)
        await session.flush()
        session.add(
            models.CashBalance(user_id=user.id, currency="CNY", amount=D("1000000"), updated_at=now)
        )
        session.add(
            models.Position(
                user_id=user.id,
                symbol_code=SYMBOL,
                quantity=D(1000),
                cost_basis=D("1400000.00"),
                realized_pnl=D(0),
                updated_at=now,
            )
        )
        await session.commit()
        return user.id


async def quote(parts: Embedded) -> None:
    tick = Tick(SYMBOL, datetime.now(UTC), QUOTE, QUOTE - D("0.01"), QUOTE + D("0.01"), D(10**6))
    await parts.store.write_ticks([tick])


async def place_all(parts: Embedded, user_id: int, orders: list[OrderSpec]) -> list[models.Order]:
    requests = [
        OrderRequest(SYMBOL, spec.side, spec.type, spec.lots * LOT, spec.limit) for spec in orders
    ]
    outcomes = await parts.orders.place_orders(user_id, requests)
    placed = [outcome.order for outcome in outcomes]
    assert all(order is not None for order in placed), outcomes
    return [order for order in placed if order is not None]


async def fill_one_by_one(
    parts: Embedded, placed: list[models.Order], fills: list[FillSpec], tick_time: datetime
) -> list[Decimal | None]:
    versions = {order.id: order.version for order in placed}
    results: list[Decimal | None] = []
    for spec in fills:
        order_id = placed[spec.order].id
        async with parts.sessions() as session:
            outcome = await apply_fill(
                session,
                order_id=order_id,
                expected_version=versions[order_id],
                quantity=spec.lots * LOT,
                price=spec.price,
                tick_time=tick_time,
                currency="CNY",
                commission_rate=POLICY.commission_rate,
                allow_short=POLICY.allow_short_selling,
                lot_size=LOT,
            )
            await session.commit()
        if outcome is not None:
            versions[order_id] = outcome.order.version
        results.append(None if outcome is None else outcome.filled)
    return results


async def fill_in_one_batch(
    parts: Embedded, placed: list[models.Order], fills: list[FillSpec], tick_time: datetime
) -> list[Decimal | None]:
    versions = {order.id: order.version for order in placed}
    results: list[Decimal | None] = []
    async with parts.sessions() as session:
        batch = await FillBatch.load(
            session,
            list(versions),
            currency="CNY",
            commission_rate=POLICY.commission_rate,
            allow_short=POLICY.allow_short_selling,
        )
        for spec in fills:
            order_id = placed[spec.order].id
            result = batch.fill(
                order_id=order_id,
                expected_version=versions[order_id],
                quantity=spec.lots * LOT,
                price=spec.price,
                tick_time=tick_time,
                lot_size=LOT,
            )
            if result is not None:
                versions[order_id] = result.order.version
            results.append(None if result is None else result.filled)
        await batch.write(session)
        await session.commit()
    return results


async def account_state(
    parts: Embedded, user_id: int, placed: list[models.Order]
) -> dict[str, Any]:
    """Everything a fill writes for ``user_id``, with order ids replaced by their
    placement index so two traders' states compare."""
    index = {order.id: i for i, order in enumerate(placed)}
    async with parts.sessions() as session:
        cash = await session.get(models.CashBalance, (user_id, "CNY"))
        position = await session.get(models.Position, (user_id, SYMBOL))
        trades = list(
            await session.scalars(
                select(models.Trade)
                .where(models.Trade.user_id == user_id)
                .order_by(models.Trade.id)
            )
        )
        orders = list(
            await session.scalars(
                select(models.Order)
                .where(models.Order.user_id == user_id)
                .order_by(models.Order.id)
            )
        )
    assert cash is not None and position is not None
    return {
        "cash": cash.amount,
        "position": (position.quantity, position.cost_basis, position.realized_pnl),
        "trades": [
            (index[t.order_id], t.side, t.quantity, t.price, t.commission, t.realized_pnl)
            for t in trades
        ],
        "orders": [
            (
                index[o.id],
                o.status,
                o.filled_quantity,
                o.average_fill_price,
                o.reject_reason,
                o.version,
            )
            for o in orders
        ],
    }


async def compare(parts: Embedded, orders: list[OrderSpec], fills: list[FillSpec]) -> None:
    await quote(parts)
    reference, batched = await new_trader(parts, "one_by_one"), await new_trader(parts, "batched")
    placed_reference = await place_all(parts, reference, orders)
    placed_batched = await place_all(parts, batched, orders)
    assert [o.status for o in placed_reference] == [o.status for o in placed_batched]
    tick_time = datetime.now(UTC)
    expected = await fill_one_by_one(parts, placed_reference, fills, tick_time)
    got = await fill_in_one_batch(parts, placed_batched, fills, tick_time)
    assert got == expected
    assert await account_state(parts, batched, placed_batched) == await account_state(
        parts, reference, placed_reference
    )


# Buys above, at and below their reservation, sells beyond the position, orders
# filled twice (partial fills across a burst), and refused ones asked again.
ORDERS = [
    OrderSpec(OrderSide.BUY, OrderType.MARKET, 3, None),
    OrderSpec(OrderSide.BUY, OrderType.LIMIT, 2, D("1490.00")),
    OrderSpec(OrderSide.SELL, OrderType.LIMIT, 4, D("1510.00")),
    OrderSpec(OrderSide.BUY, OrderType.MARKET, 1, None),
    OrderSpec(OrderSide.SELL, OrderType.MARKET, 5, None),
    OrderSpec(OrderSide.BUY, OrderType.LIMIT, 3, D("1505.55")),
    OrderSpec(OrderSide.SELL, OrderType.LIMIT, 1, D("1499.99")),
]
FILLS = [
    FillSpec(0, 1, D("1500.01")),
    FillSpec(1, 2, D("1489.50")),
    FillSpec(2, 1, D("1510.00")),
    FillSpec(0, 2, D("1700.00")),  # past the MARKET buy's buffer: cut, the rest canceled
    FillSpec(3, 1, D("1575.01")),
    FillSpec(4, 3, D("1498.77")),
    FillSpec(2, 3, D("1512.34")),
    FillSpec(5, 1, D("1505.55")),
    FillSpec(6, 1, D("1499.99")),
    FillSpec(4, 2, D("1497.13")),
    FillSpec(5, 2, D("1503.03")),
    FillSpec(0, 1, D("1500.00")),  # closed by then: stale
]


async def test_a_batch_writes_exactly_what_fills_one_by_one_write(parts: Embedded) -> None:
    await compare(parts, ORDERS, FILLS)


prices = st.integers(min_value=1380_00, max_value=1620_00).map(lambda cents: D(cents) / 100)
order_specs = st.builds(
    lambda side, kind, lots, limit: OrderSpec(
        side, kind, lots, limit if kind is OrderType.LIMIT else None
    ),
    st.sampled_from(list(OrderSide)),
    st.sampled_from([OrderType.MARKET, OrderType.LIMIT]),
    st.integers(min_value=1, max_value=4),
    prices,
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[OrderSpec], list[FillSpec]]:
    orders = draw(st.lists(order_specs, min_size=1, max_size=12))
    fills = draw(
        st.lists(
            st.builds(
                FillSpec,
                st.integers(min_value=0, max_value=len(orders) - 1),
                st.integers(min_value=1, max_value=4),
                st.integers(min_value=1300_00, max_value=1700_00).map(lambda c: D(c) / 100),
            ),
            min_size=1,
            max_size=30,
        )
    )
    return orders, fills


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_any_batch_matches_the_per_fill_reference(
    sqlite_template: Path, scenario: tuple[list[OrderSpec], list[FillSpec]]
) -> None:
    asyncio.run(_compare_on_copy(sqlite_template, *scenario))


async def _compare_on_copy(template: Path, orders: list[OrderSpec], fills: list[FillSpec]) -> None:
    directory = Path(tempfile.mkdtemp(prefix="quantgraph-batch-"))
    shutil.copyfile(template, directory / "db.sqlite")
    try:
        async with open_embedded(f"sqlite+aiosqlite:///{directory / 'db.sqlite'}") as parts:
            await compare(parts, orders, fills)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- through the matcher ---------------------------------------------------------------


async def resting_buys(parts: Embedded, count: int, tif: TimeInForce, lots: int = 2) -> list[int]:
    """Limit buys of the demo user (1,000,000 CNY: up to three of 2 lots, six of 1)."""
    await quote(parts)
    request = OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, LOT * lots, QUOTE, tif)
    outcomes = await parts.orders.place_orders(parts.demo_user_id, [request] * count)
    ids = [outcome.order.id for outcome in outcomes if outcome.order is not None]
    assert len(ids) == count
    return ids


def crossing(volume: str = "1000000") -> Tick:
    return Tick(SYMBOL, datetime.now(UTC), QUOTE, QUOTE - D("0.01"), QUOTE - D("0.50"), D(volume))


async def orders_by_id(parts: Embedded, ids: list[int]) -> dict[int, models.Order]:
    async with parts.sessions() as session:
        rows = await session.scalars(select(models.Order).where(models.Order.id.in_(ids)))
        return {row.id: row for row in rows}


async def staged(parts: Embedded) -> list[tuple[str, dict[str, Any]]]:
    async with parts.sessions() as session:
        rows = await session.execute(
            select(models.OutboxEvent.channel, models.OutboxEvent.payload).order_by(
                models.OutboxEvent.id
            )
        )
        return [(channel, decode_id_event(payload)) for channel, payload in rows]


async def clear_outbox(parts: Embedded) -> None:
    async with parts.sessions() as session:
        await session.execute(delete(models.OutboxEvent))
        await session.commit()


async def test_an_order_that_moved_mid_batch_is_skipped_and_the_others_fill(
    parts: Embedded,
) -> None:
    # given five resting buys the matcher has booked, one canceled behind its back
    ids = await resting_buys(parts, 5, TimeInForce.GTC, lots=1)
    matcher = PaperMatcher(parts.sessions, parts.hub, parts.catalog, parts.orders, POLICY)
    await matcher.resync()
    canceled = await parts.orders.cancel_order(parts.demo_user_id, ids[2])
    assert canceled.errors == []
    # when a tick crosses all of them
    await matcher.on_tick(crossing())
    # then the four others filled, the canceled one kept its state, no trade for it
    rows = await orders_by_id(parts, ids)
    assert [rows[i].status for i in ids] == ["FILLED", "FILLED", "CANCELED", "FILLED", "FILLED"]
    assert rows[ids[2]].filled_quantity == 0 and rows[ids[2]].version == 1
    async with parts.sessions() as session:
        traded = list(
            await session.scalars(select(models.Trade.order_id).order_by(models.Trade.id))
        )
    assert traded == [ids[0], ids[1], ids[3], ids[4]]
    book = matcher.book(SYMBOL)
    assert book is not None and len(book) == 0


async def test_announcements_are_staged_in_decision_order_with_the_fills(
    parts: Embedded,
) -> None:
    # given IOC buys for 200 each and a tick whose volume covers 500
    ids = await resting_buys(parts, 3, TimeInForce.IOC)
    await clear_outbox(parts)
    matcher = PaperMatcher(
        parts.sessions, parts.hub, parts.catalog, parts.orders, POLICY, partial_fills=True
    )
    await matcher.resync()
    await matcher.on_tick(crossing(volume="500"))
    # then: two filled, the third filled 100 of 200 and expired, its two versions in order
    events = await staged(parts)
    channel = order_channel(parts.demo_user_id)
    assert [(c, e["id"], e["status"], e["version"]) for c, e in events] == [
        (channel, ids[0], "FILLED", 1),
        (channel, ids[1], "FILLED", 1),
        (channel, ids[2], "PARTIALLY_FILLED", 1),
        (channel, ids[2], "EXPIRED", 2),
    ]
    rows = await orders_by_id(parts, ids)
    assert rows[ids[2]].filled_quantity == 100 and rows[ids[2]].status == "EXPIRED"


async def test_a_tripped_write_fence_rolls_back_everything(parts: Embedded) -> None:
    ids = await resting_buys(parts, 3, TimeInForce.GTC)
    await clear_outbox(parts)
    async with parts.sessions() as session:
        batch = await FillBatch.load(
            session, ids, currency="CNY", commission_rate=POLICY.commission_rate, allow_short=False
        )
        for order_id in ids:
            filled = batch.fill(
                order_id=order_id,
                expected_version=0,
                quantity=LOT * 2,
                price=QUOTE,
                tick_time=datetime.now(UTC),
                lot_size=LOT,
            )
            assert filled is not None and filled.filled == LOT * 2
        # another writer's change the locks would have kept out
        await session.execute(
            update(models.Order).where(models.Order.id == ids[1]).values(version=7)
        )
        with pytest.raises(StaleBatchError):
            await batch.write(session)
        await session.rollback()
    rows = await orders_by_id(parts, ids)
    assert [(rows[i].status, rows[i].version) for i in ids] == [("NEW", 0)] * 3
    async with parts.sessions() as session:
        assert list(await session.scalars(select(models.Trade.id))) == []


async def test_the_matcher_redoes_a_batch_the_write_fence_tripped(
    parts: Embedded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given three booked buys, and a row that moves under the first attempt's write
    ids = await resting_buys(parts, 3, TimeInForce.GTC)
    matcher = PaperMatcher(parts.sessions, parts.hub, parts.catalog, parts.orders, POLICY)
    await matcher.resync()
    original = FillBatch.write
    attempts: list[int] = []

    async def interfered(self: FillBatch, session: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            await session.execute(
                update(models.Order).where(models.Order.id == ids[1]).values(version=5)
            )
        await original(self, session)

    monkeypatch.setattr(FillBatch, "write", interfered)
    # when a tick crosses them
    await matcher.on_tick(crossing())
    # then the first attempt was rolled back whole, and the redo filled each once
    assert len(attempts) == 2
    rows = await orders_by_id(parts, ids)
    assert [(rows[i].status, rows[i].version) for i in ids] == [("FILLED", 1)] * 3
    async with parts.sessions() as session:
        traded = list(
            await session.scalars(select(models.Trade.order_id).order_by(models.Trade.id))
        )
    assert traded == ids
    assert [e["version"] for _, e in await staged(parts) if e["id"] in ids][-3:] == [1, 1, 1]


async def test_the_expiry_pass_closes_due_orders_in_one_batch_skipping_moved_ones(
    parts: Embedded,
) -> None:
    # given three GTD buys the matcher has booked, one canceled behind its back
    await quote(parts)
    expires = datetime.now(UTC) + timedelta(hours=1)
    request = OrderRequest(
        SYMBOL, OrderSide.BUY, OrderType.LIMIT, LOT, QUOTE, TimeInForce.GTD, expires_at=expires
    )
    outcomes = await parts.orders.place_orders(parts.demo_user_id, [request] * 3)
    ids = [outcome.order.id for outcome in outcomes if outcome.order is not None]
    matcher = PaperMatcher(parts.sessions, parts.hub, parts.catalog, parts.orders, POLICY)
    await matcher.resync()
    await parts.orders.cancel_order(parts.demo_user_id, ids[1])
    await clear_outbox(parts)
    # when the expiry pass runs after their expiry
    await matcher.expire_day_orders(expires + timedelta(seconds=1))
    # then the two others expired (announced in id order), the canceled one is untouched
    rows = await orders_by_id(parts, ids)
    assert [(rows[i].status, rows[i].version) for i in ids] == [
        ("EXPIRED", 1),
        ("CANCELED", 1),
        ("EXPIRED", 1),
    ]
    assert [(e["id"], e["status"]) for _, e in await staged(parts)] == [
        (ids[0], "EXPIRED"),
        (ids[2], "EXPIRED"),
    ]
    book = matcher.book(SYMBOL)
    assert book is not None and len(book) == 0


async def test_a_cancel_committed_between_read_and_write_is_fenced_off_on_sqlite(
    embedded: Embedded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite's driver takes no lock at the read (the transaction begins at the first
    # write), so another connection can commit in between: the fenced UPDATE is then
    # the guard. (PostgreSQL's FOR UPDATE makes the cancel wait for the batch instead.)
    parts = embedded
    ids = await resting_buys(parts, 3, TimeInForce.GTC)
    matcher = PaperMatcher(parts.sessions, parts.hub, parts.catalog, parts.orders, POLICY)
    await matcher.resync()
    original = FillBatch.write
    attempts: list[int] = []

    async def racing(self: FillBatch, session: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            canceled = await parts.orders.cancel_order(parts.demo_user_id, ids[1])
            assert canceled.errors == []
        await original(self, session)

    monkeypatch.setattr(FillBatch, "write", racing)
    await matcher.on_tick(crossing())
    # the first attempt tripped the fence and was rolled back; the redo skipped the
    # canceled order and filled the others, once
    assert len(attempts) == 2
    rows = await orders_by_id(parts, ids)
    assert [(rows[i].status, rows[i].version) for i in ids] == [
        ("FILLED", 1),
        ("CANCELED", 1),
        ("FILLED", 1),
    ]
    async with parts.sessions() as session:
        traded = list(
            await session.scalars(select(models.Trade.order_id).order_by(models.Trade.id))
        )
    assert traded == [ids[0], ids[2]]
