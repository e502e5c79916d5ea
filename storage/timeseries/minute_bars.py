"""One-minute bars kept beside the ticks, so a kline read scans bars, not ticks.

Every intraday interval (1m, 5m, 15m, 1h) is a whole number of minutes, so its
bars are folds of minute bars. The SQL store writes a batch's minute bars in
the transaction that writes its ticks, merged into the stored ones by one
upsert. PostgreSQL folds the batch's ticks itself: in the statement that
inserts a small batch (:data:`POSTGRES_WRITE`), or after a large batch's
``COPY`` (:data:`POSTGRES_FOLD`); SQLite's are folded here
(:func:`fold_minute_bars`, then :data:`SQLITE_UPSERT`). The merge is what
aggregating all the ticks in (time, id) order would give: the open is the price
of the smallest (time, id) either side has seen, the close the largest's, high
and low the extremes, volume and trade count the sums. The database's row lock
on the bar serialises two writers of the same minute, and each merges into what
the other committed, so no order of batches loses a tick.

Ticks written around the store (hand-made SQL, a bulk ``COPY``) are not in the
bars; the migration that added them folded the ticks stored before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Insert,
    Numeric,
    Select,
    String,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by, array
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.models import MinuteBarRow, TickRow
from storage.timeseries.base import Bar, KlineInterval
from storage.timeseries.buckets import floor_to_interval

# A bar's volume is a sum of many ticks' volumes: wide enough never to round it.
EXACT_SUM = Context(prec=100)


@dataclass(slots=True)
class MinuteBar:
    """A minute's bar with the (time, id) of the ticks that gave its open and close."""

    symbol: str
    bucket: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int
    first_time: datetime
    first_id: int
    last_time: datetime
    last_id: int

    def params(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "bucket": self.bucket,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "trade_count": self.trade_count,
            "first_time": self.first_time,
            "first_id": self.first_id,
            "last_time": self.last_time,
            "last_id": self.last_id,
        }


def fold_minute_bars(
    ticks: Iterable[tuple[int, str, datetime, Decimal, Decimal]],
) -> list[MinuteBar]:
    """Ticks given as (id, symbol, time, last, volume), in any order, as one bar per
    (symbol, minute), sorted by that key: two writers then lock shared bars in
    the same order and cannot deadlock on them."""
    bars: dict[tuple[str, datetime], MinuteBar] = {}
    for tick_id, symbol, time, price, size in ticks:
        # Epoch-aligned minutes are calendar minutes in UTC (no leap seconds here).
        key = (symbol, time.replace(second=0, microsecond=0))
        bar = bars.get(key)
        if bar is None:
            bars[key] = MinuteBar(
                symbol, key[1], price, price, price, price, size, 1, time, tick_id, time, tick_id
            )
            continue
        if price > bar.high:
            bar.high = price
        if price < bar.low:
            bar.low = price
        bar.volume = EXACT_SUM.add(bar.volume, size)
        bar.trade_count += 1
        if (time, tick_id) < (bar.first_time, bar.first_id):
            bar.open, bar.first_time, bar.first_id = price, time, tick_id
        if (time, tick_id) > (bar.last_time, bar.last_id):
            bar.close, bar.last_time, bar.last_id = price, time, tick_id
    return [bars[key] for key in sorted(bars)]


def _merged(statement: Any, *, postgres: bool) -> Insert:
    """``statement`` (an insert of new minute bars) merging into the stored ones."""
    new, old = statement.excluded, MinuteBarRow.__table__.c
    earlier = tuple_(new.first_time, new.first_id) < tuple_(old.first_time, old.first_id)
    later = tuple_(new.last_time, new.last_id) > tuple_(old.last_time, old.last_id)
    if postgres:
        high, low = func.greatest(old.high, new.high), func.least(old.low, new.low)
        volume = old.volume + new.volume
    else:
        high, low = func.exact_max(old.high, new.high), func.exact_min(old.low, new.low)
        volume = func.exact_add(old.volume, new.volume)
    merged: Insert = statement.on_conflict_do_update(
        index_elements=[old.symbol, old.bucket],
        set_={
            "open": case((earlier, new.open), else_=old.open),
            "first_time": case((earlier, new.first_time), else_=old.first_time),
            "first_id": case((earlier, new.first_id), else_=old.first_id),
            "close": case((later, new.close), else_=old.close),
            "last_time": case((later, new.last_time), else_=old.last_time),
            "last_id": case((later, new.last_id), else_=old.last_id),
            "high": high,
            "low": low,
            "volume": volume,
            "trade_count": old.trade_count + new.trade_count,
        },
    )
    return merged


def _minute_summary(tick: Any, *extra: Any) -> Select[Any]:
    """Per (symbol, minute) of ``tick``'s rows: what every fold takes (high, low,
    volume, trade count, first and last time), grouped; ``extra`` columns go after the
    bucket. Open and close are each fold's own."""
    epoch: ColumnElement[Any] = literal_column("TIMESTAMPTZ '1970-01-01 00:00:00+00'")
    bucket = func.date_bin(literal_column("INTERVAL '1 minute'"), tick.time, epoch)
    return select(
        tick.symbol.label("symbol"),
        bucket.label("bucket"),
        *extra,
        func.max(tick.last).label("high"),
        func.min(tick.last).label("low"),
        func.sum(tick.volume).label("volume"),
        func.count().label("trade_count"),
        func.min(tick.time).label("first_time"),
        func.max(tick.time).label("last_time"),
    ).group_by(tick.symbol, bucket)


def _postgres_fold(*, listed: bool) -> Insert:
    """The minute bars of the ticks whose ids are ``:lo`` to ``:hi`` (which the
    primary key finds), folded by PostgreSQL and merged; when ``listed``, only
    those of them whose ids are in ``:ids``.

    The ids are the ones a writer took for its ``COPY``: other writers' ticks in
    that range are theirs to fold, so a range with gaps (where another writer's
    ticks may be) needs the list. Filtering by the list costs more than the rest
    of the fold together (a semi-join of 1,000 ids), and a batch's ids are almost
    always one unbroken run.

    A minute's open and close are not found by sorting its ticks: the aggregate
    gives its first and last time, and the (symbol, time) index the batch's ticks
    at those times, of which the smallest (largest) id wins. Half the time of
    ordered ``array_agg``s, on a batch of 1,000. Groups are inserted in key order
    (lock order).
    """
    tick = TickRow.__table__.c
    mine: list[ColumnElement[bool]] = [tick.id.between(bindparam("lo"), bindparam("hi"))]
    if listed:
        ids = bindparam("ids", type_=ARRAY(BigInteger()))
        mine.append(tick.id.in_(select(func.unnest(ids)).scalar_subquery()))
    return _postgres_fold_of(mine)


def _postgres_fold_of(mine: Sequence[ColumnElement[bool]]) -> Insert:
    """The minute bars of the ticks ``mine`` selects, folded and merged (see
    :func:`_postgres_fold`)."""
    tick = TickRow.__table__.c
    minute = _minute_summary(tick).where(*mine).subquery("minute")

    def edge(time: Any, name: str, *, last: bool) -> Any:
        """The batch's tick at the minute's first (last) time with the smallest
        (largest) id: found by the (symbol, time) index, not by sorting the minute."""
        return (
            select(tick.id, tick.last)
            .where(tick.symbol == minute.c.symbol, tick.time == time, *mine)
            .order_by(tick.id.desc() if last else tick.id)
            .limit(1)
            .lateral(name)
        )

    opening = edge(minute.c.first_time, "opening", last=False)
    closing = edge(minute.c.last_time, "closing", last=True)
    folded = (
        select(
            minute.c.symbol,
            minute.c.bucket,
            opening.c.last,
            minute.c.high,
            minute.c.low,
            closing.c.last,
            minute.c.volume,
            minute.c.trade_count,
            minute.c.first_time,
            opening.c.id,
            minute.c.last_time,
            closing.c.id,
        )
        .select_from(minute.join(opening, true()).join(closing, true()))
        .order_by(minute.c.symbol, minute.c.bucket)
    )
    columns = [column.name for column in MinuteBarRow.__table__.columns]
    return _merged(postgres_insert(MinuteBarRow).from_select(columns, folded), postgres=True)


# The columns a PostgreSQL write sends, one array each, and the arrays' types.
POSTGRES_TICK_ARRAYS: tuple[tuple[str, Any], ...] = (
    ("id", BigInteger()),
    ("symbol", String()),
    ("time", DateTime(timezone=True)),
    ("last", Numeric()),
    ("bid", Numeric()),
    ("ask", Numeric()),
    ("volume", Numeric()),
)


def _postgres_write() -> Insert:
    """A batch of ticks, one array per column (:data:`POSTGRES_TICK_ARRAYS`),
    inserted, and their minute bars folded from the rows just inserted and merged:
    one statement, so one round trip, atomic without a transaction of its own.

    A statement's parts do not see each other's writes, so the fold reads the
    inserted rows as the insert returns them, not the table. Each minute's ticks
    are sorted once, as (price, id) pairs in (time, id) order: the first pair
    gives the open and its id, the last the close and its id. The ids are the
    caller's, ascending in the batch's order. Groups are inserted in key order
    (lock order).
    """
    names = [name for name, _ in POSTGRES_TICK_ARRAYS]
    batch = (
        func.unnest(*(bindparam(name, type_=ARRAY(kind)) for name, kind in POSTGRES_TICK_ARRAYS))
        .table_valued(*names)
        .render_derived(name="batch")
    )
    table = TickRow.__table__
    written = (
        postgres_insert(TickRow)
        .from_select(names, select(*(batch.c[name] for name in names)))
        .returning(table.c.id, table.c.symbol, table.c.time, table.c.last, table.c.volume)
        .cte("written")
    )
    tick = written.c
    pairs = func.array_agg(
        aggregate_order_by(array([tick.last, tick.id]), tick.time, tick.id),
        type_=ARRAY(Numeric(), dimensions=2),
    )
    minute = _minute_summary(tick, pairs.label("pairs")).subquery("minute").c
    last = func.array_length(minute.pairs, 1)
    folded = select(
        minute.symbol,
        minute.bucket,
        minute.pairs[1][1],
        minute.high,
        minute.low,
        minute.pairs[last][1],
        minute.volume,
        minute.trade_count,
        minute.first_time,
        cast(minute.pairs[1][2], BigInteger),
        minute.last_time,
        cast(minute.pairs[last][2], BigInteger),
    ).order_by(minute.symbol, minute.bucket)
    columns = [column.name for column in MinuteBarRow.__table__.columns]
    return _merged(postgres_insert(MinuteBarRow).from_select(columns, folded), postgres=True)


SQLITE_UPSERT = _merged(sqlite_insert(MinuteBarRow), postgres=False)
"""Bars folded by :func:`fold_minute_bars`, merged (one parameter set per bar).
SQLite keeps decimals as text, so it compares and adds them with the exact
functions of :mod:`storage.sqlite_functions`."""


def _postgres_rebuild() -> Insert:
    """The minute bars of one symbol's readable ticks from ``:start`` to before
    ``:end``, folded by PostgreSQL and merged, returning each bar's minute and
    trade count."""
    tick = TickRow.__table__.c
    finite = "NOT IN ('NaN', 'Infinity', '-Infinity')"
    mine = [
        tick.symbol == bindparam("symbol"),
        tick.time >= bindparam("start"),
        tick.time < bindparam("end"),
        literal_column(f"ticks.last {finite}", Boolean()),
        literal_column(f"ticks.volume {finite}", Boolean()),
    ]
    bar = MinuteBarRow.__table__.c
    return _postgres_fold_of(mine).returning(bar.bucket, bar.trade_count)


POSTGRES_WRITE = _postgres_write()
POSTGRES_FOLD = _postgres_fold(listed=False)
"""The fold of a batch whose ids are one unbroken run, ``:lo`` to ``:hi``."""
POSTGRES_FOLD_LISTED = _postgres_fold(listed=True)
"""The fold of a batch whose ids, ``:ids``, have gaps between ``:lo`` and ``:hi``."""
POSTGRES_REBUILD = _postgres_rebuild()
"""The fold of a symbol's stored ticks in ``[:start, :end)`` (``rebuild-bars``)."""


class IntervalFold:
    """Minute bars in read order (newest first when ``newest``) folded into
    ``interval`` bars as they come: the ``limit`` newest, else the ``limit`` oldest,
    answered oldest first by :meth:`bars`. A read needs at most
    ``limit * minutes_per(interval)`` minute bars for that; fed in parts, it never
    holds more than its answer, and ``full`` says when later minutes cannot change it.
    """

    def __init__(self, symbol: str, interval: KlineInterval, limit: int, *, newest: bool) -> None:
        self._symbol = symbol
        self._interval = interval
        self._limit = limit
        self._newest = newest
        self._folded: list[Bar] = []
        self._current: Bar | None = None
        self.full = False

    def add(self, minutes: Iterable[Bar]) -> None:
        if self._interval is KlineInterval.MINUTE_1:
            for minute in minutes:
                if self.full:
                    return
                self._folded.append(minute)
                self.full = len(self._folded) == self._limit
            return
        newest = self._newest
        for minute in minutes:
            if self.full:
                return
            bucket = floor_to_interval(minute.time, self._interval)
            current = self._current
            if current is not None and current.time == bucket:
                self._current = Bar(
                    self._symbol,
                    bucket,
                    minute.open if newest else current.open,
                    max(current.high, minute.high),
                    min(current.low, minute.low),
                    current.close if newest else minute.close,
                    EXACT_SUM.add(current.volume, minute.volume),
                    current.trade_count + minute.trade_count,
                )
                continue
            if current is not None:
                self._folded.append(current)
                if len(self._folded) == self._limit:
                    self._current = None
                    self.full = True
                    return
            self._current = Bar(
                self._symbol,
                bucket,
                minute.open,
                minute.high,
                minute.low,
                minute.close,
                minute.volume,
                minute.trade_count,
            )

    def bars(self) -> list[Bar]:
        bars = list(self._folded)
        if self._current is not None:
            bars.append(self._current)
        if self._newest:
            bars.reverse()
        return bars


def minutes_per(interval: KlineInterval) -> int:
    return interval.seconds // 60


def postgres_statement(statement: Any, order: Sequence[str]) -> str:
    """``statement`` as PostgreSQL text for asyncpg, its bound names given in
    ``order`` as ``$1``, ``$2``…: run on the connection under SQLAlchemy's, a
    hot statement skips SQLAlchemy's per-execution work."""
    compiled = statement.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    positions = {name: f"${index}" for index, name in enumerate(order, start=1)}
    literals = {
        name: str(value)
        for name, value in compiled.params.items()
        if name not in positions and isinstance(value, int)
    }
    unknown = set(compiled.params) - set(positions) - set(literals)
    if unknown:
        raise ValueError(f"parameters without a position: {sorted(unknown)}")
    return str(compiled) % {**positions, **literals}
