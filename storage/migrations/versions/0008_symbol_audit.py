"""symbol audit: administrative changes to symbols, with their before and after

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "symbol_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("symbol_code", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("actor_name", sa.String(length=64), nullable=False),
        sa.Column("at", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["symbol_code"], ["symbols.code"], name=op.f("fk_symbol_audit_symbol_code_symbols")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_symbol_audit")),
    )
    op.create_index(
        "ix_symbol_audit_symbol_code_id", "symbol_audit", ["symbol_code", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_symbol_audit_symbol_code_id", table_name="symbol_audit")
    op.drop_table("symbol_audit")
