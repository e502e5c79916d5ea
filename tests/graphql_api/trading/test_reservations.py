"""The kept reservations equal the recomputation from open orders after every step.

Placement reads what open orders hold back from ``cash_balances.reserved_notional``
and ``sell_reservations`` (kept by every order change), no longer from a sum
over the account's open orders. These tests run seeded random sequences of
every order change there is — placements of every type and time in force,
cancels, cancel-all, amendments, ticks that fill (whole or in part, IOC and
FOK remainders closed), DAY and GTD expiry, stop triggers, the per-fill path,
an administrator's grid change that cancels misfits, account resets — through
the real services on SQLite and PostgreSQL, and after each step compare the
kept values with :func:`storage.repositories.accounts.reserved_for_buys` /
:func:`~storage.repositories.accounts.reserved_for_sells`, exactly.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from graphql_api.instruments.admin import Actor, InstrumentService
from graphql_api.instruments.drafts import SymbolChanges
from graphql_api.trading.fill_batch import BatchFill, FillBatch, StaleBatchError
from graphql_api.trading.fills import apply_fill, close_order
from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.order_types import (
    OPEN_STATUSES,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from graphql_api.trading.orders import OrderService
from graphql_api.trading.risk import RiskPolicy
from storage import models
from storage.repositories import accounts as account_repo
from storage.repositories import orders as order_repo
from storage.repositories import reservations
from storage.repositories import users as user_repo
from storage.timeseries import Tick
from tests.conftest import sql_database
from tests.graphql_api.conftest import POLICY, Embedded, open_embedded

# (symbol, currency, tick size, unit of quantity (whole lots), centre price)
SYMBOLS = [
    ("000001.SZ", "CNY", Decimal("0.01"), Decimal("100"), Decimal("11.00")),
    ("ETHUSDT", "USDT", Decimal("0.01"), Decimal("0.0137"), Decimal("3400.00")),
]
STEPS = 90


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_kept_reservations_equal_the_recomputed_ones_after_every_step(
    request: pytest.FixtureRequest, kind: str, seed: int
) -> None:
    # given: the real services over a fresh database; short selling in one run of three
    policy = replace(POLICY, allow_short_selling=seed == 2)
    async with sql_database(request, kind) as url, open_embedded(url) as parts:
        service = OrderService(parts.sessions, parts.catalog, parts.store, parts.outbox, policy)
        parts = replace(parts, orders=service)
        run = _Run(parts, policy, random.Random(seed))
        await run.check("start")
        # when / then: after every step the kept values are the recomputed ones
        for step in range(STEPS):
            name = await run.step()
            await run.check(f"step {step} ({name})")
        assert run.fills > 0 and run.closed > 0, (run.fills, run.closed)


class _Run:
    def __init__(self, parts: Embedded, policy: RiskPolicy, rng: random.Random) -> None:
        self.parts, self.policy, self.rng = parts, policy, rng
        self.user = parts.demo_user_id
        self.matcher = PaperMatcher(
            parts.sessions,
            parts.hub,
            parts.catalog,
            parts.orders,
            policy,
            partial_fills=rng.random() < 0.7,
        )
        self.admin = InstrumentService(
            parts.sessions, parts.catalog, parts.outbox, Decimal(1_000_000)
        )
        self.placed: list[int] = []
        self.last = {code: centre for code, _, _, _, centre in SYMBOLS}
        self.clock = datetime.now(UTC)
        self.fills = 0
        self.closed = 0

    async def step(self) -> str:
        choice = self.rng.choices(
            [
                "place",
                "place_batch",
                "tick",
                "cancel",
                "cancel_all",
                "amend",
                "expire",
                "fill_one",
                "close_one",
                "grid",
                "reset",
            ],
            weights=[30, 6, 30, 8, 2, 10, 3, 4, 3, 2, 1],
        )[0]
        await getattr(self, f"_{choice}")()
        return choice

    # --- the steps ------------------------------------------------------------------

    async def _place(self) -> None:
        outcome = await self.parts.orders.place_order(self.user, await self._request())
        if outcome.order is not None:
            self.placed.append(outcome.order.id)
        await self.matcher.resync()

    async def _place_batch(self) -> None:
        requests = [await self._request() for _ in range(self.rng.randint(2, 6))]
        for outcome in await self.parts.orders.place_orders(self.user, requests):
            if outcome.order is not None:
                self.placed.append(outcome.order.id)
        await self.matcher.resync()

    async def _tick(self) -> None:
        code, _, tick_size, lot, _ = self.rng.choice(SYMBOLS)
        centre = self.last[code]
        last = _on_grid(centre * Decimal(1 + self.rng.uniform(-0.03, 0.03)), tick_size)
        spread = tick_size * self.rng.randint(0, 3)
        self.last[code] = last
        self.clock = max(datetime.now(UTC), self.clock + timedelta(microseconds=1))
        tick = Tick(
            code,
            self.clock,
            last,
            last - spread if last - spread > 0 else last,
            last + spread,
            lot * self.rng.randint(0, 80),
        )
        await self.parts.store.write_ticks([tick])
        before = await self._trade_count()
        await self.matcher.on_tick(tick)
        self.fills += await self._trade_count() - before

    async def _cancel(self) -> None:
        if self.placed:
            outcome = await self.parts.orders.cancel_order(self.user, self.rng.choice(self.placed))
            self.closed += not outcome.errors
            await self.matcher.resync()

    async def _cancel_all(self) -> None:
        symbol = self.rng.choice([None, *(code for code, *_ in SYMBOLS)])
        outcome = await self.parts.orders.cancel_all_orders(self.user, symbol)
        self.closed += len(outcome.orders)
        await self.matcher.resync()

    async def _amend(self) -> None:
        if not self.placed:
            return
        order = await self._order(self.rng.choice(self.placed))
        spec = (await self.parts.catalog.get_many([order.symbol_code]))[order.symbol_code]
        price = quantity = None
        if self.rng.random() < 0.6:
            centre = self.last[order.symbol_code]
            price = _on_grid(centre * Decimal(1 + self.rng.uniform(-0.05, 0.05)), spec.tick_size)
        if price is None or self.rng.random() < 0.5:
            unit = next(s[3] for s in SYMBOLS if s[0] == order.symbol_code)
            quantity = unit * self.rng.randint(1, 60)
        # refusals (not resting, too dear, below filled, ...) must change nothing
        await self.parts.orders.amend_order(
            self.user, order.id, limit_price=price, quantity=quantity
        )
        await self.matcher.resync()

    async def _expire(self) -> None:
        # the periodic pass, at a moment past every DAY order's close and most GTDs
        before = await self._open_count()
        await self.matcher.expire_day_orders(datetime.now(UTC) + timedelta(days=3))
        self.closed += before - await self._open_count()

    async def _fill_one(self) -> None:
        """The per-fill path (one transaction per fill), kept beside the batched one."""
        order = await self._some_open_order()
        if order is None:
            return
        code, currency, _, lot, _ = next(s for s in SYMBOLS if s[0] == order.symbol_code)
        spec = (await self.parts.catalog.get_many([code]))[code]
        remaining = order.quantity - order.filled_quantity
        quantity = min(remaining, lot * self.rng.randint(1, 20))
        async with self.parts.sessions() as session:
            outcome = await apply_fill(
                session,
                order_id=order.id,
                expected_version=order.version,
                quantity=quantity,
                price=self.last[code],
                tick_time=datetime.now(UTC),
                currency=currency,
                commission_rate=self.policy.commission_rate,
                allow_short=self.policy.allow_short_selling,
                lot_size=spec.lot_size,
            )
            await session.commit()
        self.fills += outcome is not None and outcome.trade is not None
        await self.matcher.resync()

    async def _close_one(self) -> None:
        order = await self._some_open_order()
        if order is None:
            return
        async with self.parts.sessions() as session:
            closed = await close_order(
                session,
                order_id=order.id,
                expected_version=order.version,
                status=self.rng.choice([OrderStatus.EXPIRED, OrderStatus.CANCELED]),
            )
            await session.commit()
        self.closed += closed is not None
        await self.matcher.resync()

    async def _grid(self) -> None:
        """An administrator's new tick size cancels the resting orders off the grid."""
        spec = (await self.parts.catalog.get_many(["ETHUSDT"]))["ETHUSDT"]
        tick = Decimal("0.05") if spec.tick_size == Decimal("0.01") else Decimal("0.01")
        outcome = await self.admin.update(
            Actor(None, "cli:test"), "ETHUSDT", SymbolChanges(tick_size=tick)
        )
        assert outcome.errors == [], outcome.errors
        self.closed += outcome.canceled_orders
        await self.matcher.resync()

    async def _reset(self) -> None:
        outcome = await self.parts.orders.reset_account(self.user, lambda _: Decimal(1_000_000))
        assert outcome.errors == []
        self.closed += len(outcome.canceled)
        await self.matcher.resync()

    # --- helpers ----------------------------------------------------------------------

    async def _request(self) -> OrderRequest:
        code, _, _, unit, _ = self.rng.choice(SYMBOLS)
        spec = (await self.parts.catalog.get_many([code]))[code]
        kind = self.rng.choice(list(OrderType))
        tif = self.rng.choice(list(TimeInForce))
        stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
        if stop and tif in (TimeInForce.IOC, TimeInForce.FOK):
            tif = TimeInForce.GTC  # a stop waits for its trigger
        centre = self.last[code]

        def price() -> Decimal:
            return _on_grid(centre * Decimal(1 + self.rng.uniform(-0.04, 0.04)), spec.tick_size)

        return OrderRequest(
            code,
            self.rng.choice([OrderSide.BUY, OrderSide.SELL]),
            kind,
            unit * self.rng.randint(1, 60),
            price() if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
            tif,
            stop_price=price() if stop else None,
            expires_at=(
                datetime.now(UTC) + timedelta(milliseconds=self.rng.choice([200, 86_400_000]))
                if tif is TimeInForce.GTD
                else None
            ),
        )

    async def _order(self, order_id: int) -> models.Order:
        async with self.parts.sessions() as session:
            order = await session.get(models.Order, order_id)
        assert order is not None
        return order

    async def _some_open_order(self) -> models.Order | None:
        async with self.parts.sessions() as session:
            rows = list(
                await session.scalars(
                    select(models.Order)
                    .where(
                        models.Order.user_id == self.user,
                        models.Order.status.in_(OPEN_STATUSES),
                    )
                    .order_by(models.Order.id)
                )
            )
        return self.rng.choice(rows) if rows else None

    async def _open_count(self) -> int:
        async with self.parts.sessions() as session:
            rows = await session.scalars(
                select(models.Order.id).where(models.Order.status.in_(OPEN_STATUSES))
            )
            return len(list(rows))

    async def _trade_count(self) -> int:
        async with self.parts.sessions() as session:
            return len(list(await session.scalars(select(models.Trade.id))))

    async def check(self, where: str) -> None:
        rate = self.policy.commission_rate
        async with self.parts.sessions() as session:
            for _, currency, _, _, _ in SYMBOLS:
                key = (self.user, currency)
                kept = (await reservations.reserved_notional(session, [key]))[key]
                # the notional without commission, then as placement reads it
                [reference] = (
                    await account_repo.reserved_for_buys_by_account(session, [key], Decimal(0))
                ).values()
                assert kept == reference, (where, currency, kept, reference)
                assert reservations.with_commission(
                    kept, rate
                ) == await account_repo.reserved_for_buys(session, self.user, currency, rate), (
                    where,
                    currency,
                )
            for code, *_ in SYMBOLS:
                key = (self.user, code)
                kept = (await reservations.reserved_quantity(session, [key]))[key]
                reference = await account_repo.reserved_for_sells(session, self.user, code)
                assert kept == reference, (where, code, kept, reference)


def _on_grid(value: Decimal, step: Decimal) -> Decimal:
    return max(step, (value / step).to_integral_value() * step)


@pytest.mark.postgres
async def test_two_processes_placing_for_one_account_never_spend_the_same_cash(
    request: pytest.FixtureRequest,
) -> None:
    # given two processes' services on one PostgreSQL database (each batches its own
    # placements; only the balance row lock orders them against the other's)
    async with (
        sql_database(request, "postgresql") as url,
        open_embedded(url) as first,
        open_embedded(url) as second,
    ):
        user = first.demo_user_id
        await first.store.write_ticks(
            [Tick("600519.SH", datetime.now(UTC), D1500, D1500, D1500, Decimal(100))]
        )
        # when both place more BUYs at once than the cash pays for (150,045 each
        # with commission: six fit in 1,000,000)
        outcomes = await asyncio.gather(
            *(
                parts.orders.place_order(user, _buy_600519())
                for _ in range(10)
                for parts in (first, second)
            )
        )
        accepted = [o.order for o in outcomes if o.order is not None and o.order.status == "NEW"]
        # then exactly six were accepted, and the kept reservation is theirs
        assert len(accepted) == 6
        async with first.sessions() as session:
            kept = (await reservations.reserved_notional(session, [(user, "CNY")]))[(user, "CNY")]
            reference = await account_repo.reserved_for_buys(session, user, "CNY", Decimal(0))
        assert kept == reference == 6 * Decimal(150_000)
        # and when one process cancels while the other places again, the cash a cancel
        # frees is spent at most once
        canceled = accepted[:3]
        await asyncio.gather(
            *(first.orders.cancel_order(user, order.id) for order in canceled),
            *(second.orders.place_order(user, _buy_600519()) for _ in range(6)),
        )
        async with first.sessions() as session:
            kept = (await reservations.reserved_notional(session, [(user, "CNY")]))[(user, "CNY")]
            reference = await account_repo.reserved_for_buys(session, user, "CNY", Decimal(0))
            open_buys = await session.scalar(
                select(func.count()).where(
                    models.Order.user_id == user, models.Order.status.in_(OPEN_STATUSES)
                )
            )
        assert kept == reference == (open_buys or 0) * Decimal(150_000)
        assert reservations.with_commission(kept, POLICY.commission_rate) <= Decimal(1_000_000)


D1500 = Decimal("1500.00")


def _buy_600519() -> OrderRequest:
    return OrderRequest("600519.SH", OrderSide.BUY, OrderType.LIMIT, Decimal(100), D1500)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_removing_a_user_removes_their_sell_reservations(
    request: pytest.FixtureRequest, kind: str
) -> None:
    # given a resting short SELL, which reserves quantity of a symbol the user holds none of
    policy = replace(POLICY, allow_short_selling=True)
    async with sql_database(request, kind) as url, open_embedded(url) as parts:
        orders = type(parts.orders)(
            parts.sessions, parts.catalog, parts.store, parts.outbox, policy
        )
        user = parts.demo_user_id
        await parts.store.write_ticks(
            [Tick("600519.SH", datetime.now(UTC), D1500, D1500, D1500, Decimal(100))]
        )
        sell = OrderRequest("600519.SH", OrderSide.SELL, OrderType.LIMIT, Decimal(100), D1500)
        outcome = await orders.place_order(user, sell)
        assert outcome.order is not None and outcome.order.status == "NEW"
        async with parts.sessions() as session:
            key = (user, "600519.SH")
            assert (await reservations.reserved_quantity(session, [key]))[key] == 100
        # when the user is removed (foreign keys are enforced on both databases)
        async with parts.sessions() as session:
            await user_repo.delete_user(session, user)
            await session.commit()
        # then nothing of theirs is left
        async with parts.sessions() as session:
            left = await session.scalar(select(func.count()).select_from(models.SellReservation))
        assert left == 0


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_a_fill_racing_a_cancel_cannot_make_the_cancel_release_a_stale_amount(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """A writer derives what an order stops holding from the row it read; the row must
    not change before it writes (row locks on PostgreSQL; on SQLite the write
    transaction begun before the read, ``order_repo.begin_writing``)."""
    async with sql_database(request, kind) as url, open_embedded(url) as parts:
        user = parts.demo_user_id
        await parts.store.write_ticks(
            [Tick("600519.SH", datetime.now(UTC), D1500, D1500, D1500, Decimal(100))]
        )
        placed = (await parts.orders.place_order(user, _buy_600519())).order
        assert placed is not None and placed.status == "NEW"

        # given a cancel that has read (and locked) the order, not written yet
        async with parts.sessions() as canceling:
            order = await order_repo.order_for_user(canceling, user, placed.id, for_update=True)
            assert order is not None

            async def fill() -> BatchFill | None:
                async with parts.sessions() as session:
                    try:
                        batch = await FillBatch.load(
                            session,
                            [placed.id],
                            currency="CNY",
                            commission_rate=POLICY.commission_rate,
                            allow_short=False,
                        )
                        filled = batch.fill(
                            order_id=placed.id,
                            expected_version=placed.version,
                            quantity=Decimal(100),
                            price=D1500,
                            tick_time=datetime.now(UTC),
                            lot_size=Decimal(100),
                        )
                        await batch.write(session)
                        await session.commit()
                    except StaleBatchError:
                        return None
                    return filled

            # when the matcher fills it meanwhile
            filling = asyncio.create_task(fill())
            await asyncio.sleep(0.3)
            closed = await close_order(
                canceling,
                order_id=placed.id,
                expected_version=placed.version,
                status=OrderStatus.CANCELED,
            )
            await canceling.commit()
        await filling
        # then whichever won, the kept reservation is what the orders hold
        assert closed is not None
        async with parts.sessions() as session:
            kept = (await reservations.reserved_notional(session, [(user, "CNY")]))[(user, "CNY")]
            reference = await account_repo.reserved_for_buys(session, user, "CNY", Decimal(0))
        assert kept == reference == 0
