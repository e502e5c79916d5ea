"""equity_snapshots: an account's worth per currency over time

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "equity_snapshots",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("taken_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("cash", storage.types.ExactDecimal(), nullable=False),
        sa.Column("positions_value", storage.types.ExactDecimal(), nullable=False),
        sa.Column("equity", storage.types.ExactDecimal(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_equity_snapshots_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equity_snapshots")),
        sa.UniqueConstraint(
            "user_id", "currency", "kind", "taken_at", name="uq_equity_snapshots_point"
        ),
    )


def downgrade() -> None:
    op.drop_table("equity_snapshots")
