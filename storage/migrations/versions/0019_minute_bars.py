"""minute_bars: one-minute bars kept with the ticks, filled from the ticks stored so far

Kline reads aggregated every tick of their range (a day of 1m bars on
PostgreSQL scanned 259,200 ticks); they now scan minute bars, which the SQL
time-series store keeps in the transaction that writes the ticks. This revision
creates the table and folds the ticks already stored into it: in SQL on
PostgreSQL, in Python on SQLite (which keeps decimals as text), skipping rows
the store could not read either.

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

import storage.types
from storage.timeseries.minute_bars import fold_minute_bars
from storage.types import SQLITE_TIME_GLOB, parse_sqlite_time

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The open and close ticks by (time, id), joined back for their exact time and price.
_PG_BACKFILL = """
WITH readable AS (
    SELECT * FROM ticks
    WHERE time BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00'
                   AND TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'
      AND last NOT IN ('NaN', 'Infinity', '-Infinity')
      AND volume NOT IN ('NaN', 'Infinity', '-Infinity')
), minutes AS (
    SELECT symbol,
           date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
           (min(ARRAY[extract(epoch FROM time)::numeric, id::numeric]))[2]::bigint AS first_id,
           (max(ARRAY[extract(epoch FROM time)::numeric, id::numeric]))[2]::bigint AS last_id,
           max(last) AS high, min(last) AS low, sum(volume) AS volume, count(*) AS trade_count
    FROM readable
    GROUP BY 1, 2
)
INSERT INTO minute_bars (symbol, bucket, open, high, low, close, volume, trade_count,
                         first_time, first_id, last_time, last_id)
SELECT m.symbol, m.bucket, f.last, m.high, m.low, l.last, m.volume, m.trade_count,
       f.time, f.id, l.time, l.id
FROM minutes AS m
JOIN ticks AS f ON f.id = m.first_id
JOIN ticks AS l ON l.id = m.last_id
"""


def upgrade() -> None:
    op.create_table(
        "minute_bars",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("bucket", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("open", storage.types.ExactDecimal(), nullable=False),
        sa.Column("high", storage.types.ExactDecimal(), nullable=False),
        sa.Column("low", storage.types.ExactDecimal(), nullable=False),
        sa.Column("close", storage.types.ExactDecimal(), nullable=False),
        sa.Column("volume", storage.types.ExactDecimal(), nullable=False),
        sa.Column("trade_count", sa.BigInteger(), nullable=False),
        sa.Column("first_time", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("last_time", storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "bucket", name=op.f("pk_minute_bars")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(_PG_BACKFILL)
    else:
        _sqlite_backfill(bind)


def _sqlite_backfill(bind: sa.Connection) -> None:
    rows = bind.execute(
        sa.text("SELECT id, symbol, time, last, volume FROM ticks WHERE time GLOB :glob"),
        {"glob": SQLITE_TIME_GLOB},
    )
    readable = []
    for tick_id, symbol, time, last, volume in rows:
        try:
            readable.append(
                (tick_id, symbol, parse_sqlite_time(time), _finite(last), _finite(volume))
            )
        except (ValueError, ArithmeticError):
            continue  # unreadable for the store too: its reads skipped the row
    bars = [bar.params() for bar in fold_minute_bars(readable)]
    if bars:
        exact, time = storage.types.ExactDecimal(), storage.types.UtcDateTime()
        table = sa.table(
            "minute_bars",
            sa.column("symbol", sa.String()),
            sa.column("bucket", time),
            *(sa.column(name, exact) for name in ("open", "high", "low", "close", "volume")),
            sa.column("trade_count", sa.BigInteger()),
            sa.column("first_time", time),
            sa.column("first_id", sa.BigInteger()),
            sa.column("last_time", time),
            sa.column("last_id", sa.BigInteger()),
        )
        bind.execute(table.insert(), bars)


def _finite(text: object) -> Decimal:
    value = Decimal(str(text))
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    return value


def downgrade() -> None:
    op.drop_table("minute_bars")
