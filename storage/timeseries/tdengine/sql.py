"""TDengine SQL text for the store.

Every statement is plain SQL with literal values: identifiers come from
:mod:`naming` (always ``[a-z0-9_]``), numbers are Python ints, and the only
strings (symbol and exchange tags) go through :func:`quote`. Timestamps are
integers in the database precision and read back with ``CAST(... AS BIGINT)``
so no client time zone is ever involved, on either connector: taospy turns a
``TIMESTAMP`` into a naive local-time ``datetime`` (through float seconds), and
taos-ws-py into a string.

Column names avoid keywords of TDengine's parser: ``LAST`` is one (as are
``FIRST``, ``COUNT``, ``VALUE``, ``PRECISION``), hence ``last_price`` rather
than ``last``; ``open``/``high``/``low``/``close``/``volume`` are not, the
``*_price`` names just keep ticks and bars alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from storage.timeseries.base import KlineInterval
from storage.timeseries.tdengine.codec import Precision

TICKS = "ticks"
BARS_1M = "bars_1m"

TICK_COLUMNS = ("ts", "seq", "last_price", "bid", "ask", "volume")
BAR_COLUMNS = (
    "ts",
    "open_price",
    "high_price",
    "low_price",
    "close_price",
    "volume",
    "trade_count",
)
TAG_COLUMNS = ("symbol", "exchange")
COMPOSITE_KEY_COLUMN = "seq"
COMPOSITE_KEY_NOTE = "COMPOSITE KEY"
"""What ``DESCRIBE`` shows in its note column for a second primary-key column."""

# Expected ``DESCRIBE`` types, checked at start-up so an incompatible existing
# schema (say, DOUBLE prices from another tool) fails loudly instead of rounding.
# ``ticks`` is keyed by (ts, seq): see :mod:`storage.timeseries.tdengine.sequence`.
TICKS_SCHEMA = {
    "ts": "TIMESTAMP",
    "seq": "BIGINT",
    "last_price": "BIGINT",
    "bid": "BIGINT",
    "ask": "BIGINT",
    "volume": "BIGINT",
    "symbol": "VARCHAR",
    "exchange": "VARCHAR",
}
BARS_1M_SCHEMA = {
    "ts": "TIMESTAMP",
    "open_price": "BIGINT",
    "high_price": "BIGINT",
    "low_price": "BIGINT",
    "close_price": "BIGINT",
    "volume": "BIGINT",
    "trade_count": "BIGINT",
    "symbol": "VARCHAR",
    "exchange": "VARCHAR",
}

# Window units m and h are aligned to the Unix epoch by TDengine; only d and w
# (and calendar n/y) are shifted to the client time zone, so none are used here.
_INTERVAL_UNITS = {
    KlineInterval.MINUTE_1: "1m",
    KlineInterval.MINUTE_5: "5m",
    KlineInterval.MINUTE_15: "15m",
    KlineInterval.HOUR_1: "1h",
}

_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'"})


def quote(value: str) -> str:
    """A single-quoted TDengine string literal (backslash escapes, per the SQL manual)."""
    return "'" + value.translate(_ESCAPES) + "'"


def interval_unit(interval: KlineInterval) -> str:
    try:
        return _INTERVAL_UNITS[interval]
    except KeyError:
        raise ValueError(f"{interval.value} bars are not aggregated from ticks") from None


# --- schema -------------------------------------------------------------------------------


def keep_clause(keep_days: int) -> str:
    """``KEEP`` plus a ``DURATION`` small enough for it (TDengine needs KEEP >= 3 * DURATION)."""
    if keep_days < 1:
        raise ValueError("keep_days must be at least 1")
    duration_minutes = min(10 * 24 * 60, keep_days * 24 * 60 // 3)
    return f" KEEP {keep_days}d DURATION {duration_minutes}m"


def create_database(
    database: str, precision: Precision, keep_days: int | None, vgroups: int | None = None
) -> str:
    keep = keep_clause(keep_days) if keep_days is not None else ""
    groups = f" VGROUPS {int(vgroups)}" if vgroups is not None else ""
    return f"CREATE DATABASE IF NOT EXISTS {database} PRECISION '{precision.value}'{keep}{groups}"


def drop_database(database: str) -> str:
    return f"DROP DATABASE IF EXISTS {database}"


def create_ticks_stable(database: str) -> str:
    return (
        f"CREATE STABLE IF NOT EXISTS {database}.{TICKS} "
        "(ts TIMESTAMP, seq BIGINT PRIMARY KEY, last_price BIGINT, bid BIGINT, ask BIGINT, "
        "volume BIGINT) "
        "TAGS (symbol VARCHAR(32), exchange VARCHAR(16))"
    )


def create_bars_1m_stable(database: str) -> str:
    return (
        f"CREATE STABLE IF NOT EXISTS {database}.{BARS_1M} "
        "(ts TIMESTAMP, open_price BIGINT, high_price BIGINT, low_price BIGINT, "
        "close_price BIGINT, volume BIGINT, trade_count BIGINT) "
        "TAGS (symbol VARCHAR(32), exchange VARCHAR(16))"
    )


def server_status() -> str:
    """Answered by a live server without touching any table (readiness probes)."""
    return "SELECT SERVER_STATUS()"


def database_precision(database: str) -> str:
    return (
        f"SELECT `precision` FROM information_schema.ins_databases WHERE name = {quote(database)}"
    )


def describe(database: str, table: str) -> str:
    return f"DESCRIBE {database}.{table}"


# --- writes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubtableRows:
    """The rows for one sub-table: its name, tag values and value tuples (timestamp first)."""

    table: str
    symbol: str
    exchange: str
    rows: Sequence[tuple[int, ...]]


def insert_statements(
    database: str,
    stable: str,
    columns: Sequence[str],
    groups: Iterable[SubtableRows],
    max_bytes: int,
) -> list[str]:
    """Multi-table ``INSERT ... USING ... TAGS`` statements, each at most ``max_bytes`` long.

    The ``USING`` clause creates a missing sub-table on the fly (and is ignored
    for an existing one), so writers never need a separate ``CREATE TABLE``.
    The server caps statement length (``maxSQLLength``, 1 MiB by default), so a
    big batch is split; a sub-table whose rows straddle a split is simply
    repeated, with its ``USING`` clause, in the next statement.
    """
    prefix = "INSERT INTO"
    column_list = "(" + ", ".join(columns) + ")"
    tag_list = "(" + ", ".join(TAG_COLUMNS) + ")"
    statements: list[str] = []
    parts: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal parts, size
        if parts:
            statements.append(" ".join(parts))
        parts, size = [], 0

    for group in groups:
        head = (
            f"{database}.{group.table} USING {database}.{stable} {tag_list} "
            f"TAGS ({quote(group.symbol)}, {quote(group.exchange)}) {column_list} VALUES"
        )
        head_bytes = len(head.encode("utf-8")) + 1
        open_head = False
        for row in group.rows:
            value = "(" + ", ".join(str(int(item)) for item in row) + ")"
            cost = len(value) + 1
            if not open_head:
                cost += head_bytes
            if parts and size + cost > max_bytes:
                flush()
                open_head = False
                cost = len(value) + 1 + head_bytes
            if not parts:
                parts.append(prefix)
                size = len(prefix)
                if size + cost > max_bytes:
                    raise ValueError(f"max_bytes={max_bytes} cannot hold even one row")
            if not open_head:
                parts.append(head)
                open_head = True
            parts.append(value)
            size += cost
    flush()
    return statements


# --- reads --------------------------------------------------------------------------------


def _time_bounds(lo: int | None, hi: int | None) -> str:
    bounds = ""
    if lo is not None:
        bounds += f" AND ts >= {int(lo)}"
    if hi is not None:
        bounds += f" AND ts < {int(hi)}"
    return bounds


def select_ticks(
    database: str, symbol: str, lo: int | None, hi: int | None, limit: int, *, newest: bool
) -> str:
    """Ticks of one symbol in ``[lo, hi)``: the first ``limit``, or with ``newest`` the last.

    The super table is queried with a tag filter rather than the sub-table by
    name, so an unknown symbol is an empty result instead of a "table does not
    exist" error. ``ORDER BY ts`` orders by the whole key ``(ts, seq)``, so
    ticks with one timestamp come back in write order (checked on 3.3.6).
    """
    return (
        "SELECT CAST(ts AS BIGINT), last_price, bid, ask, volume "
        f"FROM {database}.{TICKS} WHERE symbol = {quote(symbol)}{_time_bounds(lo, hi)} "
        f"ORDER BY ts {'DESC' if newest else 'ASC'} LIMIT {int(limit)}"
    )


def select_latest(database: str, symbols: Sequence[str]) -> str:
    """The latest tick of each symbol in one pass over the super table.

    ``LAST`` is used rather than ``LAST_ROW``: the store never writes NULLs, so
    both pick the same row, and ``CAST(LAST(ts) AS BIGINT)`` is the form
    TDengine's own test-suite exercises. Of ticks sharing the latest
    timestamp, ``LAST`` takes the one with the highest ``seq``: the last written.
    """
    in_list = ", ".join(quote(symbol) for symbol in symbols)
    return (
        "SELECT symbol, CAST(LAST(ts) AS BIGINT), LAST(last_price), LAST(bid), LAST(ask), "
        f"LAST(volume) FROM {database}.{TICKS} WHERE symbol IN ({in_list}) GROUP BY symbol"
    )


def select_klines(
    database: str,
    symbol: str,
    interval: KlineInterval,
    lo: int | None,
    hi: int | None,
    limit: int,
    *,
    newest: bool,
) -> str:
    """OHLCV bars aggregated by the server from ticks in ``[lo, hi)``.

    ``INTERVAL`` windows start at Unix time 0 (no offset), are labelled by
    ``_wstart``, and empty windows are omitted (no ``FILL``), matching the SQL
    backend. ``FIRST``/``LAST`` are the values at the earliest/latest key
    ``(ts, seq)`` of the window: open and close, in write order at equal times.
    """
    return (
        "SELECT CAST(_wstart AS BIGINT), FIRST(last_price), MAX(last_price), MIN(last_price), "
        "LAST(last_price), SUM(volume), COUNT(*) "
        f"FROM {database}.{TICKS} WHERE symbol = {quote(symbol)}{_time_bounds(lo, hi)} "
        f"INTERVAL({interval_unit(interval)}) "
        f"ORDER BY _wstart {'DESC' if newest else 'ASC'} LIMIT {int(limit)}"
    )


def select_minute_bars(
    database: str, symbol: str, lo: int | None, hi: int | None, limit: int, *, newest: bool
) -> str:
    """Imported minute bars of one symbol in ``[lo, hi)``, like :func:`select_ticks`."""
    return (
        "SELECT CAST(ts AS BIGINT), open_price, high_price, low_price, close_price, volume, "
        f"trade_count FROM {database}.{BARS_1M} WHERE symbol = {quote(symbol)}"
        f"{_time_bounds(lo, hi)} ORDER BY ts {'DESC' if newest else 'ASC'} LIMIT {int(limit)}"
    )
