"""reservations kept as state: cash_balances.reserved_notional and sell_reservations

What open orders hold back was summed from every open order of the account on
each placement; it is now kept by every order change (see
``storage.repositories.reservations``). This revision adds the two places it is
kept and fills them from the orders open at upgrade time: per (user, currency)
the remaining quantity times reserve price of the open BUYs (commission is
applied when read), per (user, symbol) the remaining quantity of the open SELLs.

The sums are taken in Python with ``Decimal`` on both databases (SQLite keeps
decimals as text), with enough precision to be exact.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Context, Decimal

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXACT = Context(prec=120)


def upgrade() -> None:
    with op.batch_alter_table("cash_balances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "reserved_notional",
                storage.types.ExactDecimal(),
                nullable=False,
                server_default="0",
            )
        )
    op.create_table(
        "sell_reservations",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("symbol_code", sa.String(length=32), nullable=False),
        sa.Column("quantity", storage.types.ExactDecimal(), nullable=False),
        sa.ForeignKeyConstraint(
            ["symbol_code"], ["symbols.code"], name=op.f("fk_sell_reservations_symbol_code_symbols")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sell_reservations_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "symbol_code", name=op.f("pk_sell_reservations")),
    )
    _backfill()


def _backfill() -> None:
    exact = storage.types.ExactDecimal()
    orders = sa.table(
        "orders",
        sa.column("user_id", sa.BigInteger()),
        sa.column("symbol_code", sa.String()),
        sa.column("side", sa.String()),
        sa.column("status", sa.String()),
        sa.column("quantity", exact),
        sa.column("filled_quantity", exact),
        sa.column("reserve_price", exact),
    )
    symbols = sa.table(
        "symbols", sa.column("code", sa.String()), sa.column("currency", sa.String())
    )
    balances = sa.table(
        "cash_balances",
        sa.column("user_id", sa.BigInteger()),
        sa.column("currency", sa.String()),
        sa.column("amount", exact),
        sa.column("reserved_notional", exact),
        sa.column("updated_at", storage.types.UtcDateTime()),
    )
    sells = sa.table(
        "sell_reservations",
        sa.column("user_id", sa.BigInteger()),
        sa.column("symbol_code", sa.String()),
        sa.column("quantity", exact),
    )
    connection = op.get_bind()
    cash: dict[tuple[int, str], Decimal] = {}
    held: dict[tuple[int, str], Decimal] = {}
    rows = connection.execute(
        sa.select(
            orders.c.user_id,
            symbols.c.currency,
            orders.c.symbol_code,
            orders.c.side,
            orders.c.quantity,
            orders.c.filled_quantity,
            orders.c.reserve_price,
        )
        .select_from(orders.join(symbols, symbols.c.code == orders.c.symbol_code))
        .where(orders.c.status.in_(("NEW", "PARTIALLY_FILLED")))
    )
    for user_id, currency, symbol_code, side, quantity, filled, reserve_price in rows:
        remaining = EXACT.subtract(quantity, filled)
        if side == "SELL":
            key = (user_id, symbol_code)
            held[key] = EXACT.add(held.get(key, Decimal(0)), remaining)
        elif reserve_price is not None:
            key = (user_id, currency)
            notional = EXACT.multiply(remaining, reserve_price)
            cash[key] = EXACT.add(cash.get(key, Decimal(0)), notional)
    existing = {
        (user_id, currency)
        for user_id, currency in connection.execute(
            sa.select(balances.c.user_id, balances.c.currency)
        )
    }
    for (user_id, currency), notional in sorted(cash.items()):
        if (user_id, currency) in existing:
            connection.execute(
                balances.update()
                .where(balances.c.user_id == user_id, balances.c.currency == currency)
                .values(reserved_notional=notional)
            )
        else:  # no cash held in that currency, yet orders reserve it: keep the reservation
            connection.execute(
                balances.insert().values(
                    user_id=user_id,
                    currency=currency,
                    amount=Decimal(0),
                    reserved_notional=notional,
                    updated_at=datetime.now(UTC),
                )
            )
    if held:
        connection.execute(
            sells.insert(),
            [
                {"user_id": user_id, "symbol_code": symbol_code, "quantity": quantity}
                for (user_id, symbol_code), quantity in sorted(held.items())
            ],
        )


def downgrade() -> None:
    op.drop_table("sell_reservations")
    with op.batch_alter_table("cash_balances", schema=None) as batch_op:
        batch_op.drop_column("reserved_notional")
