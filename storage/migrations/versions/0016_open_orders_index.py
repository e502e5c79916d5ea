"""open orders by user: a partial index for the reservation sums of placement

Every placement sums what the account's open orders hold back. With only the
index on ``status`` that read visits every open order of every user (the whole
book) and filters by user; this partial index holds only open orders, keyed by
user, so the read costs the account's own open orders and nothing else.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status IN ('NEW', 'PARTIALLY_FILLED')")


def upgrade() -> None:
    op.create_index(
        "ix_orders_open_by_user",
        "orders",
        ["user_id", "side", "symbol_code"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_orders_open_by_user", table_name="orders")
