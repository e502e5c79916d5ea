"""fixed-width SQLite times

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:00:00.000000

Older versions wrote SQLite times with ``strftime("%Y")``, which leaves years
before 1000 unpadded (``999-01-01T...``): such text sorts after every real time
(so it became the "latest" tick) and could not be read back. This pads those
years to four digits in every time column, so text order is time order again.
PostgreSQL stores ``timestamptz`` and has nothing to fix. The downgrade keeps
the padded text, which older versions read too.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every UtcDateTime column as of 0002 (later columns are written padded).
TIME_COLUMNS = {
    "users": ("created_at",),
    "ticks": ("time",),
    "strategies": ("last_bar_at", "created_at", "updated_at"),
    "signals": ("bar_time", "created_at"),
    "orders": ("expires_at", "created_at", "updated_at"),
    "leader_leases": ("expires_at",),
    "auth_sessions": ("created_at", "expires_at", "revoked_at"),
    "cash_balances": ("updated_at",),
    "positions": ("updated_at",),
    "trades": ("tick_time", "created_at"),
}
# What follows the year: -MM-DDTHH:MM:SS.ffffffZ (23 characters).
_AFTER_YEAR = (
    "-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in TIME_COLUMNS.items():
        for column in columns:
            # The last 27 characters of '000' || text: the year padded to four digits.
            op.execute(
                f"UPDATE {table} SET {column} = substr('000' || {column}, length({column}) - 23) "
                f"WHERE length({column}) BETWEEN 24 AND 26 "
                f"AND {column} GLOB '[0-9]*{_AFTER_YEAR}'"
            )


def downgrade() -> None:
    """Nothing to undo: padded years read back the same in every version."""
