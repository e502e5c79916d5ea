"""Fills in batches: every fill and close a tick produces, in ONE transaction.

Per-fill transactions (:func:`graphql_api.trading.fills.apply_fill`) cost a
commit and about a dozen ORM statements each, so one matcher wrote ~200 fills/s
on PostgreSQL. A :class:`FillBatch` instead

1. reads, with a few Core statements, every order row it may act on (locked,
   in id order, as every writer of several order rows locks them), then the
   balance and position rows of their owners (locked too);
2. decides each fill and close **in memory, in the caller's order**, through
   the same pure arithmetic as the per-fill path
   (:func:`graphql_api.trading.fills.decide_fill`,
   :func:`~graphql_api.trading.fills.order_after_fill`): a fill sees the
   cash, position and order as the fills before it in the batch left them, so
   the results are those of applying the fills one by one, to the last unit;
3. writes trades, positions, balances, orders and the ``orderUpdates``
   announcements with a handful of executemany statements, which the caller
   commits together.

Fencing stays per order. A fill or close names the version the matcher saw;
an order whose locked row is at another version, or already closed (a
cancel, an amendment, a previous leader's fill), is *stale*: that one call
returns None and writes nothing, and the rest of the batch goes on — the
stale row is found at the locked read, so it never fails the batch. The
UPDATE of each order also says ``WHERE version = <read version>``, and the
batch checks that every one matched (the executemany rowcount on SQLite; on
PostgreSQL, whose asyncpg driver reports none, one count of the rows carrying
the batch's new versions and timestamp). A mismatch raises
:class:`StaleBatchError` before commit, and the caller rolls back and redoes the
whole batch from a fresh locked read, which then sees the moved row as stale
and applies the others. On PostgreSQL the row locks keep other writers out
until the commit, so this second fence should never trip there. On SQLite it
is the real guard: the driver begins the transaction only at the first write,
so a cancel or amendment can commit between the batch's read and its write.
Redoing the batch was chosen over falling back to per-fill transactions: the
redo costs one more batch, and keeps one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.trading.fills import decide_fill, order_after_fill
from graphql_api.trading.order_types import OPEN_STATUSES, OrderChange, OrderSide, OrderStatus
from graphql_api.trading.risk import RejectReason
from storage import models
from storage.repositories import reservations

# Orders per transaction: bounds the locks held, the statement parameters
# (SQLite's limit is 32,766) and the work redone if a batch must be redone.
MAX_BATCH_ORDERS = 500

_orders = cast(Table, models.Order.__table__)
_balances = cast(Table, models.CashBalance.__table__)
_positions = cast(Table, models.Position.__table__)
_trades = cast(Table, models.Trade.__table__)


class StaleBatchError(Exception):
    """An order row changed between the batch's locked read and its write."""


@dataclass(slots=True)
class _OrderRow:
    id: int
    user_id: int
    symbol_code: str
    side: str
    quantity: Decimal
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    reserve_price: Decimal | None
    status: str
    reject_reason: str | None
    version: int
    read_version: int
    # what the order reserved as read (storage.repositories.reservations.hold)
    read_hold: Decimal

    def hold(self) -> Decimal:
        return reservations.hold(
            side=self.side,
            status=self.status,
            quantity=self.quantity,
            filled_quantity=self.filled_quantity,
            reserve_price=self.reserve_price,
        )


@dataclass(slots=True)
class _Balance:
    amount: Decimal
    stored: bool
    changed: bool = False


@dataclass(slots=True)
class _Position:
    quantity: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    stored: bool
    changed: bool = False


@dataclass(frozen=True, slots=True)
class BatchFill:
    """One fill's result: the order as it now stands and the quantity traded
    (0 when the fill was refused and the order closed instead)."""

    order: OrderChange
    filled: Decimal


@dataclass(frozen=True, slots=True)
class FillEvent:
    """A fill as its owner's webhooks receive it (``ORDER_FILLED``)."""

    order_id: int
    user_id: int
    symbol_code: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    tick_time: datetime
    order_status: str
    order_version: int
    filled_quantity: Decimal


class FillBatch:
    """Fills and closes decided in memory against locked rows, written together.

    Built by :meth:`load`; :meth:`fill` and :meth:`close` decide synchronously
    (no I/O between them, so nothing else can interleave); :meth:`write`
    stages the statements in the session, which the caller commits.

    Parameters:
        currency: the quote currency of the orders' symbol (one per batch:
            the matcher batches one symbol's tick); None for a batch of closes
            only, which reads no balances or positions.
        commission_rate / allow_short: the risk policy's fill settings.
        now: the ``updated_at`` / ``created_at`` of everything written.
    """

    def __init__(
        self,
        *,
        currency: str | None,
        commission_rate: Decimal,
        allow_short: bool,
        now: datetime,
    ) -> None:
        self._currency = currency
        self._commission_rate = commission_rate
        self._allow_short = allow_short
        self._now = now
        self._rows: dict[int, _OrderRow] = {}
        self._balances: dict[int, _Balance] = {}
        self._positions: dict[tuple[int, str], _Position] = {}
        self._trades: list[dict[str, Any]] = []
        self.changes: list[OrderChange] = []  # in decision order: the announcements
        self.fills: list[FillEvent] = []  # in decision order: for webhooks

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        order_ids: Sequence[int],
        *,
        currency: str | None,
        commission_rate: Decimal,
        allow_short: bool,
    ) -> FillBatch:
        """Lock and read the orders, then their owners' balances and positions."""
        batch = cls(
            currency=currency,
            commission_rate=commission_rate,
            allow_short=allow_short,
            now=datetime.now(UTC),
        )
        if not order_ids:
            return batch
        o = _orders.c
        result = await session.execute(
            select(
                o.id,
                o.user_id,
                o.symbol_code,
                o.side,
                o.quantity,
                o.filled_quantity,
                o.average_fill_price,
                o.reserve_price,
                o.status,
                o.reject_reason,
                o.version,
            )
            .where(o.id.in_(sorted(set(order_ids))))
            .order_by(o.id)
            .with_for_update()
        )
        for row in result:
            batch._rows[row.id] = _OrderRow(
                id=row.id,
                user_id=row.user_id,
                symbol_code=row.symbol_code,
                side=row.side,
                quantity=row.quantity,
                filled_quantity=row.filled_quantity,
                average_fill_price=row.average_fill_price,
                reserve_price=row.reserve_price,
                status=row.status,
                reject_reason=row.reject_reason,
                version=row.version,
                read_version=row.version,
                read_hold=reservations.hold(
                    side=row.side,
                    status=row.status,
                    quantity=row.quantity,
                    filled_quantity=row.filled_quantity,
                    reserve_price=row.reserve_price,
                ),
            )
        users = sorted({row.user_id for row in batch._rows.values()})
        if not users or currency is None:
            return batch
        b = _balances.c
        for user_id, amount in await session.execute(
            select(b.user_id, b.amount)
            .where(b.currency == currency, b.user_id.in_(users))
            .order_by(b.user_id)
            .with_for_update()
        ):
            batch._balances[user_id] = _Balance(amount, stored=True)
        keys = sorted({(row.user_id, row.symbol_code) for row in batch._rows.values()})
        p = _positions.c
        for user_id, symbol_code, quantity, basis, realized in await session.execute(
            select(p.user_id, p.symbol_code, p.quantity, p.cost_basis, p.realized_pnl)
            .where(tuple_(p.user_id, p.symbol_code).in_(keys))
            .order_by(p.user_id, p.symbol_code)
            .with_for_update()
        ):
            batch._positions[(user_id, symbol_code)] = _Position(
                quantity, basis, realized, stored=True
            )
        return batch

    @property
    def trade_count(self) -> int:
        return len(self._trades)

    def fill(
        self,
        *,
        order_id: int,
        expected_version: int,
        quantity: Decimal,
        price: Decimal,
        tick_time: datetime,
        lot_size: Decimal,
        all_or_none: bool = False,
    ) -> BatchFill | None:
        """:func:`graphql_api.trading.fills.apply_fill`, decided against the batch's rows.

        None when the order is stale (closed, or at another version); it is then
        left as it is.
        """
        currency = self._currency
        assert currency is not None, "a batch of closes only cannot fill"
        row = self._open_row(order_id, expected_version)
        if row is None:
            return None
        balance = self._balances.get(row.user_id)
        position = self._positions.get((row.user_id, row.symbol_code))
        side = OrderSide(row.side)
        decision = decide_fill(
            side=side,
            remaining=row.quantity - row.filled_quantity,
            reserve_price=row.reserve_price,
            cash=balance.amount if balance else Decimal(0),
            held=position.quantity if position else Decimal(0),
            cost_basis=position.cost_basis if position else Decimal(0),
            quantity=quantity,
            price=price,
            currency=currency,
            commission_rate=self._commission_rate,
            allow_short=self._allow_short,
            lot_size=lot_size,
            all_or_none=all_or_none,
        )
        if decision.refusal is not None:
            return BatchFill(
                self._set_status(row, OrderStatus.CANCELED, decision.refusal), Decimal(0)
            )
        change = decision.position
        assert change is not None
        if position is None:
            position = _Position(Decimal(0), Decimal(0), Decimal(0), stored=False)
            self._positions[(row.user_id, row.symbol_code)] = position
        position.quantity = change.quantity
        position.cost_basis = change.cost_basis
        position.realized_pnl += change.realized
        position.changed = True
        if balance is None:
            balance = self._balances[row.user_id] = _Balance(Decimal(0), stored=False)
        balance.amount += decision.cash_change
        balance.changed = True
        self._trades.append(
            {
                "order_id": row.id,
                "user_id": row.user_id,
                "symbol_code": row.symbol_code,
                "side": row.side,
                "quantity": decision.quantity,
                "price": price,
                "commission": decision.commission,
                "realized_pnl": change.realized,
                "tick_time": tick_time,
                "created_at": self._now,
            }
        )
        after = order_after_fill(
            quantity=row.quantity,
            filled_quantity=row.filled_quantity,
            average_fill_price=row.average_fill_price,
            fill=decision.quantity,
            price=price,
            cancel_rest=decision.cancel_rest,
        )
        row.filled_quantity = after.filled_quantity
        row.average_fill_price = after.average_fill_price
        changed = self._set_status(row, after.status, after.reject_reason)
        self.fills.append(
            FillEvent(
                order_id=row.id,
                user_id=row.user_id,
                symbol_code=row.symbol_code,
                side=row.side,
                quantity=decision.quantity,
                price=price,
                commission=decision.commission,
                tick_time=tick_time,
                order_status=changed.status,
                order_version=changed.version,
                filled_quantity=row.filled_quantity,
            )
        )
        return BatchFill(changed, decision.quantity)

    def close(
        self,
        *,
        order_id: int,
        expected_version: int,
        status: OrderStatus,
        reason: RejectReason | None = None,
    ) -> OrderChange | None:
        """:func:`graphql_api.trading.fills.close_order` within the batch; None when stale."""
        row = self._open_row(order_id, expected_version)
        if row is None:
            return None
        return self._set_status(row, status, reason)

    async def write(self, session: AsyncSession) -> None:
        """Stage every change in ``session`` (the caller commits, or rolls back).

        Raises :class:`StaleBatchError` when an order's fenced UPDATE matched fewer
        rows than the batch changed: the caller must roll back.
        """
        now = self._now
        if self._trades:
            await session.execute(insert(_trades), self._trades)
        new_positions: list[dict[str, Any]] = []
        old_positions: list[dict[str, Any]] = []
        for (user_id, symbol_code), position in self._positions.items():
            if not position.changed:
                continue
            values = {
                "p_user": user_id,
                "p_symbol": symbol_code,
                "p_quantity": position.quantity,
                "p_basis": position.cost_basis,
                "p_realized": position.realized_pnl,
                "p_now": now,
            }
            (old_positions if position.stored else new_positions).append(values)
        p = _positions.c
        if old_positions:
            await session.execute(
                update(_positions)
                .where(p.user_id == bindparam("p_user"), p.symbol_code == bindparam("p_symbol"))
                .values(
                    quantity=bindparam("p_quantity"),
                    cost_basis=bindparam("p_basis"),
                    realized_pnl=bindparam("p_realized"),
                    updated_at=bindparam("p_now"),
                ),
                old_positions,
            )
        if new_positions:
            await session.execute(
                insert(_positions),
                [
                    {
                        "user_id": v["p_user"],
                        "symbol_code": v["p_symbol"],
                        "quantity": v["p_quantity"],
                        "cost_basis": v["p_basis"],
                        "realized_pnl": v["p_realized"],
                        "updated_at": now,
                    }
                    for v in new_positions
                ],
            )
        await self._write_balances(session)
        await self._write_orders(session)
        await self._write_reservations(session)

    async def _write_reservations(self, session: AsyncSession) -> None:
        """Release what the filled and closed orders no longer reserve (after the
        orders' fenced UPDATE: a batch that must be redone writes none of it)."""
        changes = reservations.ReservationChanges()
        for row in self._rows.values():
            if row.version != row.read_version:
                changes.move(
                    user_id=row.user_id,
                    symbol_code=row.symbol_code,
                    side=row.side,
                    before=row.read_hold,
                    after=row.hold(),
                )
        currency_of = (
            {row.symbol_code: self._currency for row in self._rows.values()}
            if self._currency is not None
            else None
        )
        await reservations.write(session, changes, now=self._now, currency_of=currency_of)

    async def _write_balances(self, session: AsyncSession) -> None:
        now, currency = self._now, self._currency
        changed = [(user, b) for user, b in self._balances.items() if b.changed]
        if not changed or currency is None:
            return
        stored = [
            {"b_user": user, "b_currency": currency, "b_amount": b.amount, "b_now": now}
            for user, b in changed
            if b.stored
        ]
        b = _balances.c
        if stored:
            await session.execute(
                update(_balances)
                .where(b.user_id == bindparam("b_user"), b.currency == bindparam("b_currency"))
                .values(amount=bindparam("b_amount"), updated_at=bindparam("b_now")),
                stored,
            )
        created = [
            {"user_id": user, "currency": currency, "amount": bal.amount, "updated_at": now}
            for user, bal in changed
            if not bal.stored
        ]
        if created:
            await session.execute(insert(_balances), created)

    async def _write_orders(self, session: AsyncSession) -> None:
        moved = [row for row in self._rows.values() if row.version != row.read_version]
        if not moved:
            return
        o = _orders.c
        result = await session.execute(
            update(_orders)
            .where(o.id == bindparam("o_id"), o.version == bindparam("o_read_version"))
            .values(
                status=bindparam("o_status"),
                filled_quantity=bindparam("o_filled"),
                average_fill_price=bindparam("o_average"),
                reject_reason=bindparam("o_reason"),
                version=bindparam("o_version"),
                updated_at=bindparam("o_now"),
            ),
            [
                {
                    "o_id": row.id,
                    "o_read_version": row.read_version,
                    "o_status": row.status,
                    "o_filled": row.filled_quantity,
                    "o_average": row.average_fill_price,
                    "o_reason": row.reject_reason,
                    "o_version": row.version,
                    "o_now": self._now,
                }
                for row in moved
            ],
        )
        if session.get_bind().dialect.supports_sane_multi_rowcount:
            counted: int = getattr(result, "rowcount", -1)
        else:
            # asyncpg reports no executemany rowcount: count the rows that now carry
            # this batch's (id, version) and its own timestamp instead.
            counted = (
                await session.scalar(
                    select(func.count())
                    .select_from(_orders)
                    .where(
                        tuple_(o.id, o.version).in_([(row.id, row.version) for row in moved]),
                        o.updated_at == self._now,
                    )
                )
                or 0
            )
        if counted != len(moved):
            raise StaleBatchError(f"{len(moved) - counted} of {len(moved)} order rows moved")

    def _open_row(self, order_id: int, expected_version: int) -> _OrderRow | None:
        row = self._rows.get(order_id)
        if row is None or row.status not in OPEN_STATUSES or row.version != expected_version:
            return None
        return row

    def _set_status(
        self, row: _OrderRow, status: OrderStatus, reason: RejectReason | None
    ) -> OrderChange:
        row.status = status.value
        if reason is not None:
            row.reject_reason = reason.value
        row.version += 1
        change = OrderChange(
            id=row.id,
            user_id=row.user_id,
            status=row.status,
            version=row.version,
            remaining=row.quantity - row.filled_quantity,
        )
        self.changes.append(change)
        return change
