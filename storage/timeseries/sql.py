"""The SQL time-series backend (SQLite embedded, PostgreSQL at scale).

Every write keeps the one-minute bars of its ticks in the same transaction
(:mod:`storage.timeseries.minute_bars`), and kline reads scan those bars, not
the ticks. PostgreSQL takes a small batch in one statement and a large one by
``COPY`` (:class:`PostgresTickWriter`), and folds minutes into wider bars in
SQL (``date_bin``); SQLite keeps decimals as text (see ``storage.types``), where
``MAX``/``SUM`` would compare strings or round through floats, so it folds them
in Python, and merges bars with the exact functions it registers.

Reads skip a row they cannot decode (a time outside what Python can hold, text
that is not the canonical time format, a decimal that is not a finite number)
and log it: such a row can only come from outside this code (an old version's
writes, hand-made SQL), and one of them must not take down every read of its
symbol, or a ``symbols`` page, until someone deletes it. Both dialects filter
in SQL first, so the latest tick of a symbol is its latest *readable* one.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any

import asyncpg
import structlog
from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    delete,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import Label

from storage.models import MinuteBarRow, TickBatchKey, TickRow
from storage.timeseries.base import (
    AmountPlaces,
    Bar,
    BarText,
    BatchKey,
    BatchOutcome,
    KlineInterval,
    Tick,
    TickBatch,
    TimeSeriesWriteError,
    check_batch,
)
from storage.timeseries.buckets import tick_range_for_bars
from storage.timeseries.minute_bars import (
    POSTGRES_FOLD,
    POSTGRES_FOLD_LISTED,
    POSTGRES_TICK_ARRAYS,
    POSTGRES_WRITE,
    SQLITE_UPSERT,
    IntervalFold,
    fold_minute_bars,
    minutes_per,
    postgres_statement,
)
from storage.types import SQLITE_TIME_GLOB, parse_sqlite_time

log = structlog.get_logger(__name__)

_TICK_COLUMNS = ("symbol", "time", "last", "bid", "ask", "volume")
# What a failed write raises: asyncpg's own errors too, as COPY bypasses SQLAlchemy.
_WRITE_ERRORS = (
    SQLAlchemyError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
# How long a batch's idempotency key is remembered: a retry within it cannot
# store the batch twice (Stripe keeps its keys 24 hours too). Old keys are
# deleted by the writes that record new ones, at most once a minute.
BATCH_KEY_RETENTION = timedelta(hours=24)
_KEY_PRUNE_INTERVAL = timedelta(minutes=1)
# PostgreSQL's timestamptz reaches 4713 BC and 294276 AD (and infinity); asyncpg
# cannot hand those to Python, so reads keep to what a datetime can hold. As SQL
# literals: asyncpg sends datetime.min/max as -infinity/infinity.
_PG_READABLE = (
    "time BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' "
    "AND TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"
)
# How far back a quote looks past unreadable newest rows before giving up.
_FALLBACK_ROWS = 100

# Tick ids (TickIds), taken this many at a time.
_ID_BLOCK = 10_000
# Batches this large or larger are written by COPY (PostgresTickWriter).
_COPY_FROM = 100
# Ids for a batch, in the order the sequence gave them.
# (The sequence is looked up once, by the scalar subquery: looked up per row, it
# was seven times the cost of the nextvals.)
_PG_RESERVE_IDS = (
    "SELECT array(SELECT nextval((SELECT pg_get_serial_sequence('ticks', 'id')::regclass)) "
    "FROM generate_series(1, $1))"
)

# SQLite minute rows beyond which a read streams them and decodes them off the
# event loop (about 5 ms of Python per 1,000).
_LARGE_READ = 1_000

_SQLITE_LAST_ID = text("SELECT last_insert_rowid()")
"""The id of the last row this SQLite connection inserted."""

# The fold of a COPY's ticks into minute bars, for asyncpg: $1 and $2 the lowest and
# highest id, and for ids with gaps $3 all of them.
_PG_FOLD = postgres_statement(POSTGRES_FOLD, ["lo", "hi"])
_PG_FOLD_LISTED = postgres_statement(POSTGRES_FOLD_LISTED, ["lo", "hi", "ids"])
# A small batch and its fold in one statement: $1 the ids, then one array per column.
_WRITE_COLUMNS = [name for name, _ in POSTGRES_TICK_ARRAYS]
_PG_WRITE = postgres_statement(POSTGRES_WRITE, _WRITE_COLUMNS)

# Kline reads run on asyncpg directly, with positional parameters: $1 symbol,
# $2 limit, for wider bars $3 how many minute bars the limit can need, then the
# optional bounds.
# One-minute bars are the stored rows; a wider bar folds its minutes, the open
# and close being those of its first and last minute (min/max over arrays
# compare by the minute without sorting each group).
_PG_MINUTE_KLINES = """
SELECT bucket, open, high, low, close, volume, trade_count
FROM minute_bars
WHERE symbol = $1 {bounds}
ORDER BY bucket {direction}
LIMIT $2
"""
_PG_WIDER_KLINES = """
SELECT date_bin(make_interval(mins => {minutes}), bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00')
         AS bucket,
       (min(ARRAY[extract(epoch FROM bucket)::numeric, open]))[2] AS open,
       max(high) AS high,
       min(low) AS low,
       (max(ARRAY[extract(epoch FROM bucket)::numeric, close]))[2] AS close,
       sum(volume) AS volume,
       sum(trade_count)::bigint AS trade_count
FROM (SELECT * FROM minute_bars
      WHERE symbol = $1 {bounds}
      ORDER BY bucket {direction}
      LIMIT $3) AS minutes
GROUP BY 1
ORDER BY 1 {direction}
LIMIT $2
"""
# The same bars written as text by the database, as BarText writes them: the time
# as Python's isoformat writes a UTC time (bars start on whole minutes), the
# amounts in plain notation at their places (_at_scale).
_PG_AS_TEXT = """
SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
       {open}, {high}, {low}, {close}, {volume}, trade_count
FROM ({bars}) AS bars
ORDER BY bucket {direction}
"""


def _at_scale(column: str, places: str) -> str:
    """``plain_text_at_scale`` in SQL: trailing zeros dropped, then padded to
    ``places`` unless more decimals are significant (``round`` then only adds zeros)."""
    return (
        f"CASE WHEN scale(trim_scale({column})) >= {places} THEN trim_scale({column})::text "
        f"ELSE round({column}, {places})::text END"
    )


class SqlTimeSeriesStore:
    """Ticks in the relational database's ``ticks`` table."""

    def __init__(
        self, engine: AsyncEngine, *, id_block: int = _ID_BLOCK, copy_from: int = _COPY_FROM
    ) -> None:
        """``id_block``: how many tick ids PostgreSQL hands this store at a time;
        ``copy_from``: the batch size from which PostgreSQL takes a batch by ``COPY``
        (:class:`PostgresTickWriter`)."""
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._writer = PostgresTickWriter(TickIds(id_block), copy_from) if self._postgres else None
        self._next_key_prune = datetime.min.replace(tzinfo=UTC)
        # SQLite's text columns are read raw and decoded row by row (see _decode).
        self._tick_columns = [
            column if self._postgres or column.name in ("id", "symbol") else raw_text(column)
            for column in TickRow.__table__.columns
        ]

    @property
    def postgres(self) -> bool:
        """Whether the ticks are in PostgreSQL (else SQLite)."""
        return self._postgres

    async def write_ticks(self, ticks: Sequence[Tick]) -> None:
        if not ticks:
            return
        check_batch(ticks)
        try:
            async with self._engine.begin() as connection:
                await _insert_ticks(connection, ticks, self._writer)
        except _WRITE_ERRORS as error:
            raise TimeSeriesWriteError(
                f"tick batch of {len(ticks)} not written: {error}"
            ) from error

    async def write_batches(self, batches: Sequence[TickBatch]) -> list[BatchOutcome]:
        """One transaction for all of them: the keys first, then the ticks of new batches.

        A failure before the commit leaves nothing behind; a connection lost during
        the commit leaves the outcome unknown (``outcome_unknown``), which is what
        the keys are for.
        """
        for batch in batches:
            check_batch(batch.ticks)
        committing = False
        try:
            async with self._engine.connect() as connection:
                transaction = await connection.begin()
                outcomes = await _claim_keys(connection, batches, postgres=self._postgres)
                now = datetime.now(UTC)
                pruning = now >= self._next_key_prune and any(b.key for b in batches)
                if pruning:
                    await connection.execute(
                        delete(TickBatchKey).where(
                            TickBatchKey.created_at < now - BATCH_KEY_RETENTION
                        )
                    )
                stored = [
                    tick
                    for batch, outcome in zip(batches, outcomes, strict=True)
                    if outcome is BatchOutcome.STORED
                    for tick in batch.ticks
                ]
                if stored:
                    await _insert_ticks(connection, stored, self._writer)
                committing = True
                await transaction.commit()
                if pruning:
                    self._next_key_prune = now + _KEY_PRUNE_INTERVAL
        except _WRITE_ERRORS as error:
            rows = sum(len(batch.ticks) for batch in batches)
            state = "outcome unknown (lost during commit)" if committing else "not written"
            raise TimeSeriesWriteError(
                f"{len(batches)} tick batches ({rows} ticks) {state}: {error}",
                outcome_unknown=committing,
            ) from error
        return outcomes

    async def ticks(
        self, symbol: str, start: datetime | None, end: datetime | None, limit: int
    ) -> list[Tick]:
        query = select(*self._tick_columns).where(TickRow.symbol == symbol, self._readable())
        if start is not None:
            query = query.where(TickRow.time >= start)
        if end is not None:
            query = query.where(TickRow.time < end)
        async with self._engine.connect() as connection:
            if start is not None:
                query = query.order_by(TickRow.time, TickRow.id).limit(limit)
                rows = (await connection.execute(query)).all()
            else:
                query = query.order_by(TickRow.time.desc(), TickRow.id.desc()).limit(limit)
                rows = list(reversed((await connection.execute(query)).all()))
        return [tick for row in rows if (tick := self._decode(row)) is not None]

    async def latest_ticks(self, symbols: Sequence[str]) -> dict[str, Tick]:
        if not symbols:
            return {}
        # One index probe per symbol inside one statement: a window function
        # over the symbols' whole history would scan every tick they ever had.
        latest_ids = [
            select(TickRow.id)
            .where(TickRow.symbol == symbol, self._readable())
            .order_by(TickRow.time.desc(), TickRow.id.desc())
            .limit(1)
            .scalar_subquery()
            for symbol in dict.fromkeys(symbols)
        ]
        query = select(*self._tick_columns).where(
            or_(*(TickRow.id == latest for latest in latest_ids))
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        latest: dict[str, Tick] = {}
        for row in rows:
            tick = self._decode(row)
            if tick is not None:
                latest[tick.symbol] = tick
                continue
            # Rare: the newest row is unreadable. The newest readable one is the quote.
            recent = await self.ticks(row.symbol, None, None, _FALLBACK_ROWS)
            if recent:
                latest[row.symbol] = recent[-1]
        return latest

    async def klines(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[Bar]:
        bounds = self._bar_bounds(interval, start, end)
        if bounds is None:
            return []
        lo, hi = bounds
        if self._postgres:
            rows = await self._postgres_klines(
                symbol, interval, lo, hi, limit, newest=start is None
            )
            return [Bar(symbol, *row) for row in rows]
        return await self._sqlite_klines(symbol, interval, lo, hi, limit, newest=start is None)

    async def kline_texts(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        places: AmountPlaces,
    ) -> list[BarText]:
        """:meth:`klines` with PostgreSQL writing the amounts as text: decoding 50,000
        numerics into ``Decimal`` was about a third of a 10,000-bar read."""
        if not self._postgres:
            bars = await self.klines(symbol, interval, start, end, limit)
            return [BarText.of(bar, places) for bar in bars]
        bounds = self._bar_bounds(interval, start, end)
        if bounds is None:
            return []
        lo, hi = bounds
        rows = await self._postgres_klines(
            symbol, interval, lo, hi, limit, newest=start is None, places=places
        )
        return list(map(BarText._make, rows))

    @staticmethod
    def _bar_bounds(
        interval: KlineInterval, start: datetime | None, end: datetime | None
    ) -> tuple[datetime | None, datetime | None] | None:
        if not interval.is_intraday:
            raise ValueError(f"{interval.value} bars are not aggregated from ticks")
        return tick_range_for_bars(start, end, interval)

    async def close(self) -> None:
        """The engine belongs to the caller; nothing of our own to release."""

    def _readable(self) -> ColumnElement[bool]:
        return readable_time(postgres=self._postgres)

    def _decode(self, row: Any) -> Tick | None:
        """The row as a tick, or None (logged) when it cannot be one."""
        try:
            time = row.time if self._postgres else parse_sqlite_time(row.time)
            values = [
                finite_decimal(getattr(row, name)) for name in ("last", "bid", "ask", "volume")
            ]
        except (ValueError, TypeError, ArithmeticError) as error:
            log.warning("unreadable tick skipped", id=row.id, symbol=row.symbol, error=str(error))
            return None
        return Tick(row.symbol, time, *values)

    async def _postgres_klines(
        self,
        symbol: str,
        interval: KlineInterval,
        lo: datetime | None,
        hi: datetime | None,
        limit: int,
        *,
        newest: bool,
        places: AmountPlaces | None = None,
    ) -> list[Any]:
        """The bars' rows, oldest bar first: as numerics, or with ``places`` as
        :class:`BarText` writes them."""
        bounds = ""
        minute = interval is KlineInterval.MINUTE_1
        params: list[Any] = [symbol, limit]
        if not minute:
            params.append(limit * minutes_per(interval))
        if lo is not None:
            params.append(lo)
            bounds += f" AND bucket >= ${len(params)}"
        if hi is not None:
            params.append(hi)
            bounds += f" AND bucket < ${len(params)}"
        direction = "DESC" if newest else "ASC"
        statement = _PG_MINUTE_KLINES if minute else _PG_WIDER_KLINES
        sql = statement.format(bounds=bounds, direction=direction, minutes=minutes_per(interval))
        if places is not None:
            params.extend(places)
            price, quantity = f"${len(params) - 1}::int", f"${len(params)}::int"
            sql = _PG_AS_TEXT.format(
                bars=sql.strip(),
                direction=direction,
                open=_at_scale("open", price),
                high=_at_scale("high", price),
                low=_at_scale("low", price),
                close=_at_scale("close", price),
                volume=_at_scale("volume", quantity),
            )
        async with self._engine.connect() as connection:
            # asyncpg directly: SQLAlchemy's row processing doubled the time of
            # a 10,000-bar read (the engine's pool, timeouts and breaker still apply).
            rows: list[Any] = await (await _asyncpg(connection)).fetch(sql, *params)
        if newest:
            rows.reverse()
        return rows

    async def _sqlite_klines(
        self,
        symbol: str,
        interval: KlineInterval,
        lo: datetime | None,
        hi: datetime | None,
        limit: int,
        *,
        newest: bool,
    ) -> list[Bar]:
        """Minute bars read in order (newest first when ``newest``) and folded in
        Python: SQLite keeps decimals as text, where ``MAX`` would compare strings."""
        bar = MinuteBarRow.__table__.c
        columns = [bar.bucket, bar.open, bar.high, bar.low, bar.close, bar.volume]
        query = select(*(raw_text(column) for column in columns), bar.trade_count).where(
            bar.symbol == symbol
        )
        if lo is not None:
            query = query.where(bar.bucket >= lo)
        if hi is not None:
            query = query.where(bar.bucket < hi)
        order = bar.bucket.desc() if newest else bar.bucket
        most = limit * minutes_per(interval)
        query = query.order_by(order).limit(most)
        fold = IntervalFold(symbol, interval, limit, newest=newest)
        async with self._engine.connect() as connection:
            if most <= _LARGE_READ:
                fold.add(_decoded(symbol, (await connection.execute(query)).all()))
                return fold.bars()
            # A strategy's restart reads up to 100,000 bars, an hourly read of 10,000
            # bars up to 600,000 minutes. Made and decoded on the event loop, the
            # first held it for over half a second, and the second held every minute
            # in memory at once: so the rows come in parts, each decoded and folded
            # in a thread, and the read stops when the answer is complete.
            result = await connection.stream(query)
            async for part in result.partitions(_LARGE_READ):
                await asyncio.to_thread(fold.add, _decoded(symbol, part))
                if fold.full:
                    break
            await result.close()
        return fold.bars()


def _decoded(symbol: str, rows: Iterable[Any]) -> Iterator[Bar]:
    """The stored minute bars of ``rows`` that decode (lazily: where it is iterated)."""
    return (bar for row in rows if (bar := _decode_bar(symbol, row)) is not None)


def _decode_bar(symbol: str, row: Any) -> Bar | None:
    """A stored minute bar, or None (logged) when SQLite's text is not one."""
    try:
        opening, high, low, closing, volume = (finite_decimal(row[index]) for index in range(1, 6))
        return Bar(symbol, parse_sqlite_time(row[0]), opening, high, low, closing, volume, row[6])
    except (ValueError, TypeError, ArithmeticError) as error:
        log.warning("unreadable minute bar skipped", symbol=symbol, error=str(error))
        return None


async def _asyncpg(connection: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's, for COPY and row-heavy reads."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return driver


async def _claim_keys(
    connection: AsyncConnection, batches: Sequence[TickBatch], *, postgres: bool
) -> list[BatchOutcome]:
    """Record the batches' keys; a key already recorded (now or by an earlier
    transaction) makes its batch a replay or a conflict instead of a write.

    ``ON CONFLICT DO NOTHING`` rather than a look-up first: two processes storing
    the same key at once serialise on it, and the loser sees the winner's row.
    """
    first: dict[tuple[int, str], BatchKey] = {}
    for batch in batches:
        if batch.key is not None:
            first.setdefault((batch.key.owner_id, batch.key.batch_id), batch.key)
    claimed: set[tuple[int, str]] = set()
    recorded: dict[tuple[int, str], str] = {}
    if first:
        now = datetime.now(UTC)
        insert_key = postgres_insert if postgres else sqlite_insert
        statement = (
            insert_key(TickBatchKey)
            .values(
                [
                    {
                        "owner_id": key.owner_id,
                        "batch_id": key.batch_id,
                        "digest": key.digest,
                        "created_at": now,
                    }
                    for key in first.values()
                ]
            )
            .on_conflict_do_nothing()
            .returning(TickBatchKey.owner_id, TickBatchKey.batch_id)
        )
        claimed = {(row[0], row[1]) for row in await connection.execute(statement)}
        recorded = {pair: first[pair].digest for pair in claimed}
        others = [pair for pair in first if pair not in claimed]
        if others:
            existing = await connection.execute(
                select(TickBatchKey.owner_id, TickBatchKey.batch_id, TickBatchKey.digest).where(
                    tuple_(TickBatchKey.owner_id, TickBatchKey.batch_id).in_(others)
                )
            )
            recorded.update({(row[0], row[1]): row[2] for row in existing})
    outcomes: list[BatchOutcome] = []
    for batch in batches:
        if batch.key is None:
            outcomes.append(BatchOutcome.STORED)
            continue
        pair = (batch.key.owner_id, batch.key.batch_id)
        if pair in claimed and first[pair] is batch.key:
            claimed.discard(pair)  # a second batch with this key in the group is a replay
            outcomes.append(BatchOutcome.STORED)
        elif recorded.get(pair) == batch.key.digest:
            outcomes.append(BatchOutcome.REPLAYED)
        else:
            outcomes.append(BatchOutcome.CONFLICT)
    return outcomes


async def _insert_ticks(
    connection: AsyncConnection, ticks: Sequence[Tick], postgres: PostgresTickWriter | None
) -> None:
    """The ticks, then their minute bars merged into the stored ones, in one
    transaction. ``postgres`` is None on SQLite, which numbers rows itself."""
    if postgres is not None:
        await postgres.write(await _asyncpg(connection), ticks)
        return
    # Not ``RETURNING``: SQLAlchemy cannot batch it in parameter order on SQLite and
    # falls back to one statement a row (ten times slower). The transaction holds
    # SQLite's one write lock from its first insert, so the rows take consecutive
    # ids ending at the connection's last one.
    await connection.execute(insert(TickRow), [_tick_params(tick) for tick in ticks])
    last_id = (await connection.execute(_SQLITE_LAST_ID)).scalar_one()
    bars = fold_minute_bars(
        (tick_id, t.symbol, t.time, t.last, t.volume)
        for tick_id, t in enumerate(ticks, start=last_id - len(ticks) + 1)
    )
    await connection.execute(SQLITE_UPSERT, [bar.params() for bar in bars])


class PostgresTickWriter:
    """How PostgreSQL takes a batch: small ones in one statement, large ones by ``COPY``.

    A live feed writes a few ticks at a time, and waits on round trips: one
    statement (the ticks sent as arrays, inserted, and their minute bars folded
    from the inserted rows, :data:`POSTGRES_WRITE`) is one round trip and atomic
    by itself. A bulk load waits on encoding: ``COPY`` encodes rows faster than
    asyncpg encodes arrays (about a tenth more ticks a second at 1,000 a batch),
    and pays BEGIN, the ``COPY``, the fold (:data:`POSTGRES_FOLD`) and COMMIT,
    five round trips, which a large batch spreads over many ticks. Batches of
    ``copy_from`` ticks or more take ``COPY``.
    """

    def __init__(self, ids: TickIds, copy_from: int) -> None:
        self._ids = ids
        self._copy_from = copy_from

    async def write(self, driver: Any, ticks: Sequence[Tick]) -> None:
        if len(ticks) < self._copy_from:
            await self._in_one_statement(driver, ticks)
        elif driver.is_in_transaction():
            await self._copy_and_fold(driver, ticks)
        else:
            # SQLAlchemy sends BEGIN with its first statement, and these all go to
            # asyncpg directly: without this, each would commit on its own.
            async with driver.transaction():
                await self._copy_and_fold(driver, ticks)

    async def _in_one_statement(self, driver: Any, ticks: Sequence[Tick]) -> None:
        numbers = await self._ids.take(driver, len(ticks))
        columns = (list(map(attrgetter(name), ticks)) for name in _WRITE_COLUMNS[1:])
        await driver.execute(_PG_WRITE, numbers, *columns)

    async def _copy_and_fold(self, driver: Any, ticks: Sequence[Tick]) -> None:
        """``COPY`` the batch with ids of our own (the minute bars need them: a minute
        opens and closes with its (time, id)-first and -last ticks), then let
        PostgreSQL fold those ticks into the minute bars."""
        numbers = await self._ids.take(driver, len(ticks))
        await driver.copy_records_to_table(
            "ticks",
            records=[
                (tick_id, t.symbol, t.time, t.last, t.bid, t.ask, t.volume)
                for tick_id, t in zip(numbers, ticks, strict=True)
            ],
            columns=["id", *_TICK_COLUMNS],
        )
        lowest, highest = numbers[0], numbers[-1]
        if highest - lowest + 1 == len(numbers):  # one unbroken run: no other writer's ticks
            await driver.execute(_PG_FOLD, lowest, highest)
        else:
            await driver.execute(_PG_FOLD_LISTED, lowest, highest, numbers)


class TickIds:
    """Tick ids drawn from the table's sequence in blocks, handed out in order.

    One round trip per block rather than one per batch (a batch of 1,000 ticks
    took about 1 ms to number). Ids are unique as the sequence's are, and a
    batch's ascend in the order of its ticks, so ticks with equal times read back
    in the order they were written. Across batches and processes the order of ids
    is the order blocks were taken, not of writes; the minute bars follow the ids
    the rows actually have, so they stay exactly the fold of the stored ticks.
    Unused ids are gaps, as a rolled-back ``nextval`` leaves.
    """

    def __init__(self, block: int = _ID_BLOCK) -> None:
        self._block = block
        self._free: collections.deque[int] = collections.deque()

    async def take(self, driver: Any, count: int) -> list[int]:
        if len(self._free) < count:
            fresh = await driver.fetchval(_PG_RESERVE_IDS, max(count, self._block))
            self._free.extend(sorted(fresh))
        # No await from the check to here: a concurrent batch cannot take these.
        if len(self._free) < count:  # another batch took them while we waited
            return await self.take(driver, count)
        # Ascending within the batch, so equal times keep the batch's order.
        return sorted(self._free.popleft() for _ in range(count))


def _tick_params(tick: Tick) -> dict[str, Any]:
    return {
        "symbol": tick.symbol,
        "time": tick.time,
        "last": tick.last,
        "bid": tick.bid,
        "ask": tick.ask,
        "volume": tick.volume,
    }


def readable_time(*, postgres: bool) -> ColumnElement[bool]:
    """Tick rows whose time the store can decode: cheap, and checked on the index."""
    if postgres:
        return literal_column(_PG_READABLE, Boolean())
    return raw_text(TickRow.time).op("GLOB", is_comparison=True)(
        literal(SQLITE_TIME_GLOB, String())
    )


def raw_text(column: Any) -> Label[str]:
    """The column as the text SQLite holds, so a bad value fails one row, not the fetch."""
    return type_coerce(column, String()).label(column.key)


def finite_decimal(value: object) -> Decimal:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number
