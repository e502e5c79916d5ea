"""symbols: trading sessions as data (time zone and weekly windows) and the
off-session order policy, replacing ``session_close_utc_minute``

Revision ID: 0013
Revises: 0012

A symbol had only the minute (UTC) at which its trading day ended; it traded at
every hour. Each becomes the session that means exactly that: time zone UTC, one
24-hour window every day closing at that minute (``07:00-07:00``; ``00:00-24:00``
for minute 0). So nothing closes that was open, and DAY orders expire when they
did. ``off_session_orders`` starts as REFUSE (no symbol is ever closed yet).

On SQLite the columns are added and dropped in place (no table rebuild, which
the foreign keys on ``symbols`` would refuse once it has orders or bars), so
``trading_session`` keeps the default ``'{}'`` SQLite needs to add a NOT NULL
column; every writer sets it.

Downgrade keeps the UTC minute at which the first window of the session closes
(exact for every session this upgrade wrote).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _session_of(close_utc_minute: int) -> dict[str, Any]:
    minute = close_utc_minute % (24 * 60)
    opens, closes = (_clock(minute), _clock(minute)) if minute else ("00:00", "24:00")
    return {"timezone": "UTC", "windows": [{"days": _DAYS, "open": opens, "close": closes}]}


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _drop(column: str) -> None:
    """SQLite drops a column in place (3.35+): batch mode would rebuild the table, and
    dropping the old copy trips the foreign keys that orders, bars and the audit hold
    on ``symbols`` (deferring them does not help: the count stays at commit)."""
    if _sqlite():
        op.execute(f"ALTER TABLE symbols DROP COLUMN {column}")
    else:
        op.drop_column("symbols", column)


_SYMBOLS = sa.table(
    "symbols",
    sa.column("code", sa.String),
    sa.column("session_close_utc_minute", sa.Integer),
    sa.column("trading_session", sa.JSON),
)


def upgrade() -> None:
    # SQLite adds a NOT NULL column only with a default; PostgreSQL gets the
    # constraint once every row has its session.
    op.add_column(
        "symbols",
        sa.Column(
            "trading_session",
            sa.JSON(),
            nullable=not _sqlite(),
            server_default=sa.text("'{}'") if _sqlite() else None,
        ),
    )
    op.add_column(
        "symbols",
        sa.Column(
            "off_session_orders", sa.String(length=8), nullable=False, server_default="REFUSE"
        ),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(_SYMBOLS.c.code, _SYMBOLS.c.session_close_utc_minute)).all()
    for code, minute in rows:
        bind.execute(
            _SYMBOLS.update()
            .where(_SYMBOLS.c.code == code)
            .values(trading_session=_session_of(int(minute or 0)))
        )
    if not _sqlite():
        op.alter_column("symbols", "trading_session", existing_type=sa.JSON(), nullable=False)
    _drop("session_close_utc_minute")


def downgrade() -> None:
    op.add_column(
        "symbols",
        sa.Column("session_close_utc_minute", sa.Integer(), nullable=False, server_default="0"),
    )
    bind = op.get_bind()
    for code, session in bind.execute(sa.select(_SYMBOLS.c.code, _SYMBOLS.c.trading_session)).all():
        bind.execute(
            _SYMBOLS.update()
            .where(_SYMBOLS.c.code == code)
            .values(session_close_utc_minute=_close_minute(session))
        )
    _drop("off_session_orders")
    _drop("trading_session")


def _close_minute(session: Any) -> int:
    try:
        window = session["windows"][0]
        hours, minutes = str(window["close"]).split(":")
        minute = (int(hours) * 60 + int(minutes)) % (24 * 60)
    except (KeyError, IndexError, TypeError, ValueError):
        return 0
    if session.get("timezone") == "UTC":
        return minute
    # Another zone: its close in UTC today (the offset of the day of the downgrade).
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo(session["timezone"])).replace(
        hour=minute // 60, minute=minute % 60, second=0, microsecond=0
    )
    moment = local.astimezone(UTC)
    return moment.hour * 60 + moment.minute
