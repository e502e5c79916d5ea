"""orders: STOP and STOP_LIMIT (stop price, trigger time, a wider type)

Revision ID: 0010
Revises: 0009

``STOP_LIMIT`` is ten characters: the type column grows from 8 to 16 (SQLite
keeps no length, so batch mode's table copy changes nothing there). The new
columns are null for every order that is not a stop order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.alter_column(
            "type",
            existing_type=sa.String(length=8),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
        batch.add_column(sa.Column("stop_price", storage.types.ExactDecimal(), nullable=True))
        batch.add_column(
            sa.Column("triggered_at", storage.types.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("triggered_at")
        batch.drop_column("stop_price")
        batch.alter_column(
            "type",
            existing_type=sa.String(length=16),
            type_=sa.String(length=8),
            existing_nullable=False,
        )
