"""strategies.evaluated_from: where a running strategy's indicator state begins

The live engine records the first bar it fed a strategy's rule when the
strategy went live. A restart, failover or resync then replays every stored
bar from there to ``last_bar_at`` (up to a cap), so EMA, RSI and MACD resume
with the state an uninterrupted engine would have, not one rebuilt from the
last few warm-up bars. NULL until the engine takes the strategy live (and
after every ``startStrategy``); rows running before this revision get it on
their next rebuild.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("strategies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("evaluated_from", storage.types.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("strategies", schema=None) as batch_op:
        batch_op.drop_column("evaluated_from")
