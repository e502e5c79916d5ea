"""account_resets: paper accounts started over, with the last fill before each

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_resets",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reset_at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_trade_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_resets_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_resets")),
    )
    op.create_index(op.f("ix_account_resets_user_id"), "account_resets", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_account_resets_user_id"), table_name="account_resets")
    op.drop_table("account_resets")
