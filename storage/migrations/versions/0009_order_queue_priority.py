"""orders: queue priority kept across amendments

Revision ID: 0009
Revises: 0008

An amended order that loses its time priority (a new price, a larger quantity)
ranks after every order that existed when it was amended: ``queue_anchor`` is
the newest order id at that moment and ``queued_at`` orders amendments at the
same anchor. Both are null for an order never sent to the back (it ranks by
id), so existing rows need no backfill.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column(
                "queue_anchor",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch.add_column(
            sa.Column("queued_at", storage.types.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("queued_at")
        batch.drop_column("queue_anchor")
