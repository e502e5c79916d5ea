"""Trading invariants under random sequences of orders, cancels, amendments and ticks
(hypothesis).

Each example runs the real OrderService and PaperMatcher against a fresh copy
of the seeded SQLite database; ticks are handed to the matcher directly so
every example is deterministic. Ticks are stamped with the current time, and
some are back-dated (by milliseconds to days) to check that no tick from
before an order's creation fills it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from graphql_api.trading.fills import fit_buy_to_reservation
from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType, TimeInForce
from graphql_api.trading.risk import reserved_cash
from storage import models
from storage.repositories import accounts as account_repo
from storage.timeseries import Tick
from tests.graphql_api.conftest import POLICY, open_embedded

SYMBOL = "000001.SZ"  # tick 0.01, lot 100, CNY
START_CASH = Decimal("1000000")

prices = st.integers(min_value=900, max_value=1300).map(lambda cents: Decimal(cents) / 100)
orders = st.fixed_dictionaries(
    {
        "kind": st.just("order"),
        "side": st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
        "type": st.sampled_from(list(OrderType)),
        "stop": prices,
        "lots": st.integers(min_value=1, max_value=600),
        "price": prices,
        "tif": st.sampled_from(list(TimeInForce)),
        # GTD only: expires this long after placement (some within the example)
        "expires_ms": st.sampled_from([300, 86_400_000]),
    }
)
ticks = st.fixed_dictionaries(
    {
        "kind": st.just("tick"),
        "price": prices,
        "spread": st.integers(min_value=0, max_value=3),
        "volume_lots": st.integers(min_value=0, max_value=800),
        # 0: now; otherwise back-dated by this many milliseconds (up to two days)
        "back_ms": st.sampled_from([0, 0, 0, 1, 5, 50, 1_000, 10_000, 172_800_000]),
    }
)
cancels = st.one_of(
    st.fixed_dictionaries({"kind": st.just("cancel"), "pick": st.integers(0, 50)}),
    st.fixed_dictionaries({"kind": st.just("cancel_all")}),
)
amends = st.fixed_dictionaries(
    {
        "kind": st.just("amend"),
        "pick": st.integers(0, 50),
        "price": st.one_of(st.none(), prices),
        "lots": st.one_of(st.none(), st.integers(min_value=1, max_value=600)),
    }
)
steps = st.lists(
    st.one_of(orders, orders, ticks, ticks, ticks, cancels, amends), min_size=1, max_size=30
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps, partial=st.booleans())
def test_invariants_hold_for_any_sequence(
    sqlite_template: Path, steps: list[dict[str, Any]], partial: bool
) -> None:
    asyncio.run(_run(sqlite_template, steps, partial))


async def _run(template: Path, steps: list[dict[str, Any]], partial: bool) -> None:
    directory = Path(tempfile.mkdtemp(prefix="quantgraph-prop-"))
    shutil.copyfile(template, directory / "db.sqlite")
    try:
        async with open_embedded(f"sqlite+aiosqlite:///{directory / 'db.sqlite'}") as parts:
            sessions, service = parts.sessions, parts.orders
            matcher = PaperMatcher(
                sessions, parts.hub, parts.catalog, service, POLICY, partial_fills=partial
            )
            user_id = parts.demo_user_id
            clock = datetime.now(UTC)
            placed: list[int] = []
            for step in steps:
                if step["kind"] == "tick":
                    clock = max(datetime.now(UTC), clock + timedelta(microseconds=1))
                    tick = _tick(step, clock - timedelta(milliseconds=step["back_ms"]))
                    await parts.store.write_ticks([tick])
                    await matcher.on_tick(tick)
                    await matcher.expire_day_orders(datetime.now(UTC))
                elif step["kind"] == "order":
                    outcome = await service.place_order(user_id, _request(step))
                    assert outcome.errors == []
                    assert outcome.order is not None
                    placed.append(outcome.order.id)
                    await matcher.resync()
                elif step["kind"] == "cancel_all":
                    await service.cancel_all_orders(user_id)
                    await matcher.resync()
                elif step["kind"] == "amend" and placed:
                    # refusals (not resting, too dear, ...) are fine: they must change nothing
                    await service.amend_order(
                        user_id,
                        placed[step["pick"] % len(placed)],
                        limit_price=step["price"],
                        quantity=None if step["lots"] is None else Decimal(step["lots"] * 100),
                    )
                    await matcher.resync()
                elif step["kind"] == "cancel" and placed:
                    await service.cancel_order(user_id, placed[step["pick"] % len(placed)])
                    await matcher.resync()
                await _check_invariants(sessions, user_id)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _tick(step: dict[str, Any], clock: datetime) -> Tick:
    last: Decimal = step["price"]
    spread = Decimal(step["spread"]) / 100
    return Tick(
        SYMBOL,
        clock,
        last,
        last - spread if last - spread > 0 else last,
        last + spread,
        Decimal(step["volume_lots"] * 100),
    )


def _request(step: dict[str, Any]) -> OrderRequest:
    kind: OrderType = step["type"]
    limit = step["price"] if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
    stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    tif: TimeInForce = step["tif"]
    if stop and tif in (TimeInForce.IOC, TimeInForce.FOK):
        tif = TimeInForce.GTC  # a stop waits for its trigger
    gtd = tif is TimeInForce.GTD
    return OrderRequest(
        SYMBOL,
        step["side"],
        kind,
        Decimal(step["lots"] * 100),
        limit,
        tif,
        stop_price=step["stop"] if stop else None,
        expires_at=(
            datetime.now(UTC) + timedelta(milliseconds=step["expires_ms"]) if gtd else None
        ),
    )


async def _check_invariants(sessions: Any, user_id: int) -> None:
    async with sessions() as session:
        reserved = await account_repo.reserved_for_buys(
            session, user_id, "CNY", POLICY.commission_rate
        )
        reserved_sell = await account_repo.reserved_for_sells(session, user_id, SYMBOL)
        balances = list(
            await session.scalars(
                select(models.CashBalance).where(models.CashBalance.user_id == user_id)
            )
        )
        positions = list(
            await session.scalars(select(models.Position).where(models.Position.user_id == user_id))
        )
        trades = list(await session.scalars(select(models.Trade)))
        orders = {o.id: o for o in await session.scalars(select(models.Order))}
    cny = next(b for b in balances if b.currency == "CNY")
    # cash never goes negative; no short positions without short selling
    assert all(b.amount >= 0 for b in balances)
    assert all(p.quantity >= 0 for p in positions)
    # buying power never goes negative: no fill spends cash other orders reserve
    assert cny.amount - reserved >= 0, (cny.amount, reserved)
    # and the position covers what open sells reserve
    held = next((p.quantity for p in positions if p.symbol_code == SYMBOL), Decimal(0))
    assert held >= reserved_sell
    for order in orders.values():
        # a properly reserved order is never starved by another one's fill: only a
        # MARKET or STOP buy (whose price can run past its reservation) is cut at fill time
        if order.reject_reason == "INSUFFICIENT_FUNDS_AT_FILL":
            assert order.type in ("MARKET", "STOP") and order.side == "BUY", order.id
        if order.status == "CANCELED" and order.reject_reason == "INSUFFICIENT_POSITION":
            raise AssertionError(f"sell {order.id} lost its reserved position")
        # fill or kill: all of it, or nothing
        if order.time_in_force == "FOK":
            assert order.filled_quantity in (0, order.quantity), order.id
    # cash + cost basis is conserved, apart from realised P&L and commission
    basis = sum((p.cost_basis for p in positions), Decimal(0))
    realized = sum((p.realized_pnl for p in positions), Decimal(0))
    commission = sum((t.commission for t in trades), Decimal(0))
    assert cny.amount + basis - realized + commission == START_CASH
    # every fill belongs to exactly one existing order, and never overfills it
    filled: defaultdict[int, Decimal] = defaultdict(Decimal)
    for trade in trades:
        assert trade.order_id in orders
        filled[trade.order_id] += trade.quantity
        # no tick stamped before the order existed fills it, nor one at or after its expiry
        assert trade.tick_time >= orders[trade.order_id].created_at, trade.id
        expires_at = orders[trade.order_id].expires_at
        assert expires_at is None or trade.tick_time < expires_at, trade.id
        # a stop fills only once triggered, and never on a tick before its trigger
        triggered_at = orders[trade.order_id].triggered_at
        if orders[trade.order_id].type in ("STOP", "STOP_LIMIT"):
            assert triggered_at is not None and trade.tick_time >= triggered_at, trade.id
    for order_id, order in orders.items():
        assert filled.get(order_id, Decimal(0)) == order.filled_quantity
        assert order.filled_quantity <= order.quantity
    # position quantity equals net filled quantity
    net = sum((t.quantity if t.side == "BUY" else -t.quantity for t in trades), Decimal(0))
    assert sum((p.quantity for p in positions), Decimal(0)) == net


@settings(max_examples=500, deadline=None)
@given(
    remaining_lots=st.integers(min_value=1, max_value=1000),
    wanted_lots=st.integers(min_value=1, max_value=1000),
    reserve_cents=st.integers(min_value=1, max_value=500_000),
    price_cents=st.integers(min_value=1, max_value=500_000),
    lot=st.sampled_from([Decimal(100), Decimal("0.001"), Decimal(1)]),
    currency=st.sampled_from(["CNY", "USDT"]),
)
def test_a_buy_fill_never_spends_more_than_its_reservation(
    remaining_lots: int,
    wanted_lots: int,
    reserve_cents: int,
    price_cents: int,
    lot: Decimal,
    currency: str,
) -> None:
    rate = POLICY.commission_rate
    remaining, reserve = remaining_lots * lot, Decimal(reserve_cents) / 100
    fill = fit_buy_to_reservation(
        wanted=min(wanted_lots, remaining_lots) * lot,
        remaining=remaining,
        price=Decimal(price_cents) / 100,
        reserve_price=reserve,
        lot_size=lot,
        commission_rate=rate,
        currency=currency,
    )
    held = reserved_cash(remaining, reserve, rate)
    cost = fill.quantity * Decimal(price_cents) / 100 + fill.commission
    # whole lots, within the holding, and what stays open stays fully reserved
    assert fill.quantity % lot == 0 and 0 <= fill.quantity <= remaining
    assert cost <= held
    if not fill.cancel_rest:
        assert fill.quantity > 0
        assert held - cost >= reserved_cash(remaining - fill.quantity, reserve, rate)
    # at or below the reserve price the fill is never cut
    if price_cents <= reserve_cents:
        assert (fill.quantity, fill.cancel_rest) == (min(wanted_lots, remaining_lots) * lot, False)
