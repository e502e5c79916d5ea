"""What open orders hold back, kept as state instead of summed on every placement.

Exchanges keep an account's balance as free and locked parts; here the locked
part is ``cash_balances.reserved_notional`` (what open BUYs quoted in that
currency hold, before commission: remaining quantity times reserve price) and
``sell_reservations.quantity`` (what open SELLs of a symbol hold). Placement
reads these few rows instead of summing every open order of the account, whose
cost grew with the account's book.

Every transaction that opens, changes or closes an order records the change
of what the order holds (:func:`hold` before and after) in a
:class:`ReservationChanges` and :func:`write`\\s it before it commits, so the
state moves with the orders in the same commit. The writes are increments done
by the database (``reserved = reserved + delta``), never a value computed from
an earlier read: two transactions that change one account's orders cannot lose
each other's change, on PostgreSQL (row locks) or SQLite (one writer at a
time). SQLite keeps decimals as text, so there the addition is
``exact_add``, a function registered on every connection
(:func:`storage.sqlite_functions.register_sqlite_functions`) that adds the two texts as ``Decimal``.

The recomputation from open orders
(:func:`storage.repositories.accounts.reserved_for_buys` and
:func:`~storage.repositories.accounts.reserved_for_sells`) stays as the
reference: the tests compare the two after every step of random sequences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models
from storage.sqlite_functions import EXACT

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


_balances = cast(Table, models.CashBalance.__table__)
_sells = cast(Table, models.SellReservation.__table__)

UserCurrency = tuple[int, str]
UserSymbol = tuple[int, str]


def hold(
    *,
    side: str,
    status: str,
    quantity: Decimal,
    filled_quantity: Decimal,
    reserve_price: Decimal | None,
) -> Decimal:
    """What one order holds back: for an open BUY its remaining notional at the
    reserve price (commission excluded), for an open SELL its remaining
    quantity; nothing once it is closed (or for a BUY without a reserve price,
    which the reference leaves out too)."""
    if status not in OPEN_STATUSES:
        return Decimal(0)
    remaining = EXACT.subtract(quantity, filled_quantity)
    if side == "SELL":
        return remaining
    if reserve_price is None:
        return Decimal(0)
    return EXACT.multiply(remaining, reserve_price)


def order_hold(order: models.Order) -> Decimal:
    """:func:`hold` of an ORM order as it stands now."""
    return hold(
        side=order.side,
        status=order.status,
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        reserve_price=order.reserve_price,
    )


@dataclass(slots=True)
class ReservationChanges:
    """The changes of what orders hold, summed per (user, symbol) and side, for one
    transaction's :func:`write`."""

    notional: dict[UserSymbol, Decimal] = field(default_factory=dict)
    quantity: dict[UserSymbol, Decimal] = field(default_factory=dict)

    def move(
        self, *, user_id: int, symbol_code: str, side: str, before: Decimal, after: Decimal
    ) -> None:
        """Record that an order of ``user_id`` on ``symbol_code`` held ``before`` and now
        holds ``after`` (both from :func:`hold`)."""
        if before == after:
            return
        totals = self.quantity if side == "SELL" else self.notional
        key = (user_id, symbol_code)
        totals[key] = EXACT.add(totals.get(key, Decimal(0)), EXACT.subtract(after, before))

    def order_changed(self, order: models.Order, before: Decimal) -> None:
        """:meth:`move` for an ORM order that held ``before`` and is now as it stands."""
        self.move(
            user_id=order.user_id,
            symbol_code=order.symbol_code,
            side=order.side,
            before=before,
            after=order_hold(order),
        )


def _added(session: AsyncSession, column: Any, delta: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        return cast(ColumnElement[Any], func.exact_add(column, delta))
    return cast(ColumnElement[Any], column + delta)


async def write(
    session: AsyncSession,
    changes: ReservationChanges,
    *,
    now: datetime,
    currency_of: Mapping[str, str] | None = None,
) -> None:
    """Add ``changes`` to the stored reservations, in ``session``'s transaction.

    ``currency_of`` maps symbols to their quote currency where the caller knows
    it; the others are read. Rows are written in key order (the order every
    writer locks balance rows in), so two writers cannot deadlock on them.
    A balance row that does not exist yet is created with no cash (an order
    cannot reserve cash in a currency the account does not hold, but a lost
    reservation would be worse than an empty row).
    """
    cash = await _per_currency(session, changes.notional, currency_of or {})
    dialect = session.get_bind().dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    if cash:
        statement = insert(_balances)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[_balances.c.user_id, _balances.c.currency],
                set_={
                    "reserved_notional": _added(
                        session,
                        _balances.c.reserved_notional,
                        statement.excluded.reserved_notional,
                    )
                },
            ),
            [
                {
                    "user_id": user_id,
                    "currency": currency,
                    "amount": Decimal(0),
                    "reserved_notional": delta,
                    "updated_at": now,
                }
                for (user_id, currency), delta in sorted(cash.items())
            ],
        )
    sells = {key: delta for key, delta in changes.quantity.items() if delta != 0}
    if sells:
        statement = insert(_sells)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[_sells.c.user_id, _sells.c.symbol_code],
                set_={"quantity": _added(session, _sells.c.quantity, statement.excluded.quantity)},
            ),
            [
                {"user_id": user_id, "symbol_code": symbol_code, "quantity": delta}
                for (user_id, symbol_code), delta in sorted(sells.items())
            ],
        )


async def _per_currency(
    session: AsyncSession, notional: Mapping[UserSymbol, Decimal], known: Mapping[str, str]
) -> dict[UserCurrency, Decimal]:
    moved = {key: delta for key, delta in notional.items() if delta != 0}
    if not moved:
        return {}
    currency_of = dict(known)
    unknown = sorted({symbol for _, symbol in moved} - currency_of.keys())
    if unknown:
        rows = await session.execute(
            select(models.Symbol.code, models.Symbol.currency).where(
                models.Symbol.code.in_(unknown)
            )
        )
        currency_of.update((code, currency) for code, currency in rows)
    totals: dict[UserCurrency, Decimal] = {}
    for (user_id, symbol_code), delta in moved.items():
        key = (user_id, currency_of[symbol_code])
        totals[key] = EXACT.add(totals.get(key, Decimal(0)), delta)
    return {key: delta for key, delta in totals.items() if delta != 0}


async def reserved_notional(
    session: AsyncSession, keys: Sequence[UserCurrency]
) -> dict[UserCurrency, Decimal]:
    """Stored BUY reservations (before commission) of several (user, currency) pairs;
    0 for a pair without a balance row."""
    b = _balances.c
    return await _stored(session, (b.user_id, b.currency), b.reserved_notional, keys)


async def reserved_quantity(
    session: AsyncSession, keys: Sequence[UserSymbol]
) -> dict[UserSymbol, Decimal]:
    """Stored SELL reservations of several (user, symbol) pairs; 0 where none is stored."""
    s = _sells.c
    return await _stored(session, (s.user_id, s.symbol_code), s.quantity, keys)


async def _stored(
    session: AsyncSession,
    key_columns: tuple[Any, Any],
    value_column: Any,
    keys: Sequence[tuple[int, str]],
) -> dict[tuple[int, str], Decimal]:
    """``value_column`` of the rows whose ``key_columns`` are among ``keys``; 0 for the rest."""
    if not keys:
        return {}
    rows = await session.execute(
        select(*key_columns, value_column).where(tuple_(*key_columns).in_(sorted(set(keys))))
    )
    found = {(user_id, code): value for user_id, code, value in rows}
    return {key: found.get(key, Decimal(0)) for key in keys}


def with_commission(notional: Decimal, commission_rate: Decimal) -> Decimal:
    """Cash a stored BUY reservation holds back: its notional plus commission at the
    current rate (the same product the recomputation from orders takes)."""
    return notional * (1 + commission_rate)


async def recompute(session: AsyncSession, user_ids: Sequence[int] | None = None) -> None:
    """Set the stored reservations of ``user_ids`` (every user: None) to what their open
    orders hold now: for rows written around the order service (bulk seeding)."""
    changes = ReservationChanges()
    order = models.Order
    query = select(
        order.user_id,
        order.symbol_code,
        order.side,
        order.status,
        order.quantity,
        order.filled_quantity,
        order.reserve_price,
    ).where(order.status.in_(OPEN_STATUSES))
    balance_reset = _balances.update().values(reserved_notional=Decimal(0))
    sell_reset = _sells.delete()
    if user_ids is not None:
        query = query.where(order.user_id.in_(sorted(set(user_ids))))
        balance_reset = balance_reset.where(_balances.c.user_id.in_(sorted(set(user_ids))))
        sell_reset = sell_reset.where(_sells.c.user_id.in_(sorted(set(user_ids))))
    for user_id, symbol_code, side, status, quantity, filled, reserve in await session.execute(
        query
    ):
        changes.move(
            user_id=user_id,
            symbol_code=symbol_code,
            side=side,
            before=Decimal(0),
            after=hold(
                side=side,
                status=status,
                quantity=quantity,
                filled_quantity=filled,
                reserve_price=reserve,
            ),
        )
    await session.execute(balance_reset)
    await session.execute(sell_reset)
    await write(session, changes, now=datetime.now(UTC))
