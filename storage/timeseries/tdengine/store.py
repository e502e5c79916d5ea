"""The TDengine time-series backend: one super table per data kind, one sub-table per symbol.

Ticks live in the ``ticks`` super table; klines are aggregated by TDengine
itself with ``INTERVAL`` windows. ``bars_1m`` holds imported minute bars
(history bought or downloaded as bars, for which no ticks exist); it is never
mixed into tick-derived klines.

TDengine has no transactions. A batch goes out as as few multi-table INSERT
statements as the server's statement-size limit allows; failures are retried
with backoff, and because every tick row is keyed by ``(sub-table, ts, seq)``
with ``seq`` fixed when the batch is encoded (:mod:`.sequence`), a replay
overwrites identical rows instead of duplicating them, while two ticks with
one timestamp are both kept. While the server is
unreachable, batches wait in a bounded in-memory buffer and a background task
delivers them, in order, once it is back.

A connector call on a dead server blocks its worker thread for as long as the
connector's own timeouts (about 10 s for the native client), and a thread
cannot be interrupted. So a write waits at most ``write_timeout`` for delivery,
then leaves the batch to the buffer (a statement still running in the
abandoned thread may land too: re-sending it overwrites the same rows), and no
lock is ever held across a call into the connector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

import structlog

from storage.timeseries.base import (
    AmountPlaces,
    Bar,
    BarText,
    BatchOutcome,
    KlineInterval,
    Tick,
    TickBatch,
    TimeSeriesWriteError,
)
from storage.timeseries.buckets import tick_range_for_bars
from storage.timeseries.tdengine import sql
from storage.timeseries.tdengine.buffer import PendingBatch, RetryBuffer
from storage.timeseries.tdengine.codec import (
    Precision,
    decode_decimal,
    decode_time,
    encode_bound,
    encode_decimal,
    encode_time,
)
from storage.timeseries.tdengine.errors import TDengineConfigError, TDengineError
from storage.timeseries.tdengine.naming import (
    BARS_1M_PREFIX,
    EXCHANGE_MAX_BYTES,
    TICKS_PREFIX,
    default_exchange,
    subtable_name,
    symbol_problem,
)
from storage.timeseries.tdengine.pool import (
    Connection,
    ConnectionFactory,
    ConnectionPool,
    Row,
    connection_factory,
)
from storage.timeseries.tdengine.sequence import WriteSequence, keyed_sequence
from storage.timeseries.tdengine.url import TDengineURL, parse_url

log = structlog.get_logger(__name__)

_LATEST_CHUNK = 500  # symbols per LAST(...) GROUP BY query
_MIN_SQL_BYTES = 4096
_MAX_FLUSH_BACKOFF = 5.0
_PREPARE_ATTEMPTS = 4


def _execute(statement: str, connection: Connection) -> int:
    return connection.execute(statement)


def _query(statement: str, connection: Connection) -> list[Row]:
    return connection.query(statement)


class TDengineTimeSeriesStore:
    """Ticks and minute bars in TDengine (see ``docs/tdengine.md``)."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        database: str,
        precision: Precision,
        buffer_max_rows: int,
        write_retries: int,
        retry_backoff: float,
        max_sql_bytes: int,
        exchange_for: Callable[[str], str],
        close_timeout: float,
        write_timeout: float = 1.0,
    ) -> None:
        """Use :meth:`open`, which also prepares the database; this only wires parts together."""
        self._pool = pool
        self._database = database
        self._precision = precision
        self._buffer = RetryBuffer(buffer_max_rows)
        self._write_retries = write_retries
        self._retry_backoff = retry_backoff
        self._max_sql_bytes = max_sql_bytes
        self._exchange_for = exchange_for
        self._close_timeout = close_timeout
        self._write_timeout = write_timeout
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self._outage: str | None = None
        self._sequence = WriteSequence()
        self.dropped_rows = 0
        """Buffered rows the server later refused outright (logged); 0 in a healthy system."""

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        precision: str = "us",
        keep_days: int | None = None,
        vgroups: int | None = None,
        pool_size: int = 4,
        buffer_max_rows: int = 100_000,
        write_retries: int = 2,
        retry_backoff: float = 0.1,
        max_sql_bytes: int = 1_000_000,
        exchange_for: Callable[[str], str] | None = None,
        close_timeout: float = 5.0,
        write_timeout: float = 1.0,
        connect: ConnectionFactory | None = None,
    ) -> TDengineTimeSeriesStore:
        """Connect, create the database and super tables if missing, and check their schema.

        ``url`` is ``taos://user:pass@host:6030/db`` (native) or
        ``taosws://user:pass@host:6041/db`` (WebSocket). ``precision``,
        ``keep_days`` and ``vgroups`` only apply when the database is created;
        an existing database with a different precision is refused, because
        integer timestamps would be misread. ``buffer_max_rows`` bounds the
        outage buffer (0 disables it: writes fail once retries are exhausted).
        ``exchange_for`` maps a symbol to its ``exchange`` tag (default: from
        the ``.SH``/``.SZ``/... suffix). ``write_timeout`` is the longest a
        write waits for delivery (retries included) before its batch is left to
        the buffer. ``connect`` replaces the connector, for tests and custom drivers.
        """
        try:
            chosen_precision = Precision(precision)
        except ValueError:
            raise TDengineConfigError(
                f"precision must be 'ms', 'us' or 'ns', not {precision!r}"
            ) from None
        if max_sql_bytes < _MIN_SQL_BYTES:
            raise TDengineConfigError(f"max_sql_bytes must be at least {_MIN_SQL_BYTES}")
        if write_retries < 0 or retry_backoff < 0 or buffer_max_rows < 0:
            raise TDengineConfigError("retry and buffer settings must not be negative")
        if write_timeout <= 0:
            raise TDengineConfigError("write_timeout must be positive")
        if keep_days is not None and keep_days < 1:
            raise TDengineConfigError("keep_days must be at least 1")
        if vgroups is not None and vgroups < 1:
            raise TDengineConfigError("vgroups must be at least 1")
        if pool_size < 1:
            raise TDengineConfigError("pool_size must be at least 1")
        parsed = parse_url(url)
        pool = ConnectionPool(connect or connection_factory(parsed), pool_size)
        store = cls(
            pool,
            database=parsed.database,
            precision=chosen_precision,
            buffer_max_rows=buffer_max_rows,
            write_retries=write_retries,
            retry_backoff=retry_backoff,
            max_sql_bytes=max_sql_bytes,
            exchange_for=exchange_for or default_exchange,
            close_timeout=close_timeout,
            write_timeout=write_timeout,
        )
        try:
            await store._prepare(parsed, keep_days, vgroups)
        except BaseException:
            await pool.close()
            raise
        log.info(
            "tdengine_store_opened",
            url=parsed.redacted,
            precision=chosen_precision.value,
            pool_size=pool_size,
        )
        return store

    async def _prepare(self, url: TDengineURL, keep_days: int | None, vgroups: int | None) -> None:
        """Run the start-up DDL, retrying briefly: a new database's vnodes may still be electing."""
        work = partial(_prepare_schema, url, self._precision, keep_days, vgroups)
        delay = max(self._retry_backoff, 0.05)
        for attempt in range(_PREPARE_ATTEMPTS):
            try:
                await self._pool.run(work)
                return
            except TDengineError as error:
                if not error.transient or attempt == _PREPARE_ATTEMPTS - 1:
                    raise
                log.info("tdengine_prepare_retry", attempt=attempt + 1, error=str(error))
                await asyncio.sleep(delay)
                delay *= 2

    async def drop_database(self) -> None:
        """Delete the whole database, then close: for test teardown only, it cannot be undone."""
        if self._closed:
            raise TDengineError("the TDengine store is closed")
        self._buffer.clear()  # nothing left to deliver into a database about to vanish
        await self._pool.run(partial(_execute, sql.drop_database(self._database)))
        await self.close()

    @property
    def database(self) -> str:
        return self._database

    @property
    def precision(self) -> Precision:
        return self._precision

    @property
    def buffered_rows(self) -> int:
        """Rows accepted by ``write_*`` but not yet confirmed by the server (outage buffer)."""
        return self._buffer.rows

    @property
    def outage(self) -> str | None:
        """Why the last delivery failed, while writes are being buffered; ``None`` once
        a delivery succeeds. Readers use it to fail fast instead of each waiting out
        the connector's timeouts on a server already known to be down."""
        return self._outage

    async def ping(self) -> None:
        """One cheap round trip (for readiness checks)."""
        await self._query(sql.server_status())

    # --- writes ---------------------------------------------------------------------------

    async def write_ticks(self, ticks: Sequence[Tick]) -> None:
        """Write a batch; see the module docstring for what "atomic" can mean here.

        Invalid values (more than 8 decimal places, out of range, naive times,
        bad symbols) fail the whole batch before anything is sent. Ticks of one
        symbol with the same timestamp are all kept, in write order, like the
        SQL backend keeps them.
        """
        if not ticks:
            return
        await self._submit(self._encode_ticks([TickBatch(ticks)]))

    async def write_batches(self, batches: Sequence[TickBatch]) -> list[BatchOutcome]:
        """All the batches' ticks as one batch, with the same guarantees as :meth:`write_ticks`.

        Keys are not recorded: TDengine has no transaction to record them in with
        the rows. A keyed batch's ``seq`` values come from its key instead
        (:func:`.sequence.keyed_sequence`), so a client's retry of the batch
        writes the same ``(ts, seq)`` keys and overwrites its own rows instead of
        adding to them. The outcome is therefore ``STORED`` even for a replay.
        """
        if not any(batch.ticks for batch in batches):
            return [BatchOutcome.STORED] * len(batches)
        await self._submit(self._encode_ticks(batches))
        return [BatchOutcome.STORED] * len(batches)

    async def write_minute_bars(self, bars: Sequence[Bar]) -> None:
        """Store imported minute bars (``bars_1m``); same delivery guarantees as ticks.

        A bar is the state of one minute, not an event: writing the same minute
        again replaces it (the table is keyed by ``ts`` alone), so re-importing
        corrected history never doubles a bar.
        """
        if not bars:
            return
        by_symbol: dict[str, dict[int, tuple[int, ...]]] = {}
        for index, bar in enumerate(bars):
            row = self._encode_row(
                "bar",
                index,
                len(bars),
                bar,
                lambda b: (b.open, b.high, b.low, b.close, b.volume),
                lambda b: (int(b.trade_count),),
            )
            by_symbol.setdefault(bar.symbol, {})[row[0]] = row
        rows = {
            symbol: [minutes[ts] for ts in sorted(minutes)] for symbol, minutes in by_symbol.items()
        }
        await self._submit(self._batch(sql.BARS_1M, sql.BAR_COLUMNS, BARS_1M_PREFIX, rows))

    def _encode_ticks(self, batches: Sequence[TickBatch]) -> PendingBatch:
        """Every tick as a ``(ts, seq, ...)`` row; ``seq`` is fixed here, once."""
        total = sum(len(batch.ticks) for batch in batches)
        by_symbol: dict[str, list[tuple[int, ...]]] = {}
        index = 0
        for batch in batches:
            count = len(batch.ticks)
            try:
                sequence = (
                    keyed_sequence(batch.key, count)
                    if batch.key is not None
                    else self._sequence.take(count)
                )
            except ValueError as error:
                raise TimeSeriesWriteError(
                    f"{error}; nothing of the batch of {total} was written"
                ) from error
            encoded = [
                self._encode_row(
                    "tick", index + offset, total, tick, lambda t: (t.last, t.bid, t.ask, t.volume)
                )
                for offset, tick in enumerate(batch.ticks)
            ]
            for tick, (ts, *values), seq in zip(batch.ticks, encoded, sequence, strict=True):
                by_symbol.setdefault(tick.symbol, []).append((ts, seq, *values))
            index += len(encoded)
        # (ts, seq) order per table is what TDengine ingests fastest; the same
        # key twice (a keyed batch replayed within one group) is one row.
        rows = {
            symbol: sorted({row[:2]: row for row in symbol_rows}.values())
            for symbol, symbol_rows in by_symbol.items()
        }
        return self._batch(sql.TICKS, sql.TICK_COLUMNS, TICKS_PREFIX, rows)

    def _encode_row(
        self,
        kind: str,
        index: int,
        total: int,
        item: Tick | Bar,
        decimals: Callable[[Any], tuple[Decimal, ...]],
        integers: Callable[[Any], tuple[int, ...]] = lambda _: (),
    ) -> tuple[int, ...]:
        """``(ts, *decimals, *integers)`` as integers; any bad item fails the whole
        batch before anything is sent."""
        try:
            problem = symbol_problem(item.symbol)
            if problem is not None:
                raise ValueError(problem)
            ts = encode_time(item.time, self._precision)
            encoded = [encode_decimal(value) for value in decimals(item)]
            return (ts, *encoded, *integers(item))
        except (ValueError, TypeError, AttributeError) as error:
            raise TimeSeriesWriteError(
                f"{kind} #{index} ({getattr(item, 'symbol', '?')!r}) cannot be stored: "
                f"{error}; nothing of the batch of {total} was written"
            ) from error

    def _batch(
        self,
        stable: str,
        columns: Sequence[str],
        prefix: str,
        by_symbol: dict[str, list[tuple[int, ...]]],
    ) -> PendingBatch:
        """INSERT statements for rows already encoded and ordered per symbol."""
        groups = []
        for symbol, rows in by_symbol.items():
            exchange = self._exchange_for(symbol)
            if exchange and (
                len(exchange.encode("utf-8")) > EXCHANGE_MAX_BYTES or symbol_problem(exchange)
            ):
                raise TimeSeriesWriteError(
                    f"exchange tag {exchange!r} for {symbol!r} is not storable "
                    f"(at most {EXCHANGE_MAX_BYTES} bytes, no control characters)"
                )
            groups.append(
                sql.SubtableRows(
                    table=subtable_name(prefix, symbol),
                    symbol=symbol,
                    exchange=exchange,
                    rows=rows,
                )
            )
        statements = sql.insert_statements(
            self._database, stable, columns, groups, self._max_sql_bytes
        )
        return PendingBatch(tuple(statements), rows=sum(len(rows) for rows in by_symbol.values()))

    async def _submit(self, batch: PendingBatch) -> None:
        if self._closed:
            raise TimeSeriesWriteError("the TDengine store is closed")
        cause: TDengineError | None = None
        if not len(self._buffer):
            try:
                await self._deliver_in_time(batch)
                self._outage = None
                return
            except TDengineError as error:
                if not error.transient:
                    raise TimeSeriesWriteError(_rejected(batch, error)) from error
                cause = error
            if self._closed:
                raise TimeSeriesWriteError(
                    f"the TDengine store closed while a batch of {batch.rows} rows was "
                    f"being delivered{_partly_applied(batch)}"
                ) from cause
        # Either TDengine is unreachable now, or it was and older batches are
        # still queued: keep arrival order by queueing behind them.
        if not self._buffer.offer(batch):
            raise TimeSeriesWriteError(
                "TDengine unavailable; buffer full "
                f"({self._buffer.rows} of {self._buffer.max_rows} rows buffered, "
                f"batch of {batch.rows} refused{_partly_applied(batch)})"
            ) from cause
        if cause is not None:
            self._outage = str(cause)
        log.warning(
            "tdengine_write_buffered",
            rows=batch.rows,
            buffered_rows=self._buffer.rows,
            error=str(cause) if cause else None,
        )
        if self._flusher is None or self._flusher.done():
            # done() too: a flusher ended by something other than Exception
            # must not leave the buffer without a deliverer for good.
            self._flusher = asyncio.create_task(self._flush_buffer(), name="tdengine-retry-buffer")

    async def _deliver(self, batch: PendingBatch) -> None:
        """Send the batch's remaining statements once, recording progress as they succeed.

        Cancelled mid-statement, the statement's thread runs on and may still land;
        ``next_statement`` then stays put and the statement is sent again later.
        """
        while not batch.done:
            await self._pool.run(partial(_execute, batch.statements[batch.next_statement]))
            batch.next_statement += 1

    async def _deliver_in_time(self, batch: PendingBatch) -> None:
        """Deliver with retries and backoff, within ``write_timeout`` in all.

        Running out of time is a transient failure: the caller buffers the batch.
        """
        delay = self._retry_backoff
        try:
            async with asyncio.timeout(self._write_timeout):
                for attempt in range(self._write_retries + 1):
                    try:
                        await self._deliver(batch)
                        return
                    except TDengineError as error:
                        if not error.transient or attempt == self._write_retries:
                            raise
                        log.info("tdengine_write_retry", attempt=attempt + 1, error=str(error))
                        await asyncio.sleep(delay)
                        delay *= 2
        except TimeoutError:
            raise TDengineError(
                f"no answer within {self._write_timeout:g}s (write deadline)"
            ) from None

    async def _flush_buffer(self) -> None:
        """Deliver buffered batches in order, backing off while TDengine stays unreachable.

        No lock is held while a statement is in flight: writers only append to
        the buffer, so a delivery blocked in the connector never blocks them.
        """
        delay = self._retry_backoff
        while True:
            batch = self._buffer.peek()
            if batch is None:
                self._flusher = None
                log.info("tdengine_buffer_drained")
                return
            try:
                await self._deliver(batch)
            except TDengineError as error:
                batch.attempts += 1
                if not error.transient:
                    self._buffer.discard(batch)
                    self.dropped_rows += batch.rows
                    log.error(
                        "tdengine_buffered_batch_rejected",
                        rows=batch.rows,
                        error=_rejected(batch, error),
                    )
                    continue
                failure: Exception = error
            except Exception as error:  # keep the only deliverer alive; it is logged
                batch.attempts += 1
                failure = error
            else:
                self._buffer.discard(batch)
                self._outage = None  # the server answers; the rest is backlog
                delay = self._retry_backoff
                continue
            self._outage = str(failure) or type(failure).__name__
            if batch.attempts & (batch.attempts - 1) == 0:  # 1st, 2nd, 4th, 8th... failure
                log.warning(
                    "tdengine_still_unavailable",
                    attempts=batch.attempts,
                    buffered_rows=self._buffer.rows,
                    error=str(failure),
                )
            await asyncio.sleep(delay)
            delay = min(max(delay, 0.01) * 2, _MAX_FLUSH_BACKOFF)

    # --- reads ----------------------------------------------------------------------------

    async def _query(self, statement: str) -> list[Row]:
        if self._closed:
            raise TDengineError("the TDengine store is closed")
        try:
            return await self._pool.run(partial(_query, statement))
        except TDengineError as error:
            if not error.transient:
                raise
        # One more try: the pool has replaced the broken connection meanwhile.
        return await self._pool.run(partial(_query, statement))

    def _bounds(
        self, start: datetime | None, end: datetime | None
    ) -> tuple[int | None, int | None]:
        lo = encode_bound(start, self._precision) if start is not None else None
        hi = encode_bound(end, self._precision) if end is not None else None
        return lo, hi

    async def ticks(
        self, symbol: str, start: datetime | None, end: datetime | None, limit: int
    ) -> list[Tick]:
        if limit <= 0 or symbol_problem(symbol) is not None:
            return []
        lo, hi = self._bounds(start, end)
        if lo is not None and hi is not None and lo >= hi:
            return []
        newest = start is None
        rows = await self._query(
            sql.select_ticks(self._database, symbol, lo, hi, limit, newest=newest)
        )
        ticks = [self._tick(symbol, row) for row in rows]
        if newest:
            ticks.reverse()
        return ticks

    async def latest_ticks(self, symbols: Sequence[str]) -> dict[str, Tick]:
        wanted = [symbol for symbol in dict.fromkeys(symbols) if symbol_problem(symbol) is None]
        if not wanted:
            return {}
        chunks = [
            wanted[index : index + _LATEST_CHUNK] for index in range(0, len(wanted), _LATEST_CHUNK)
        ]
        results = await asyncio.gather(
            *(self._query(sql.select_latest(self._database, chunk)) for chunk in chunks)
        )
        known = set(wanted)
        latest: dict[str, Tick] = {}
        for rows in results:
            for row in rows:
                symbol = row[0]
                if row[1] is not None and symbol in known:
                    latest[symbol] = self._tick(symbol, row[1:])
        return latest

    async def klines(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[Bar]:
        sql.interval_unit(interval)  # ValueError for daily bars, like the SQL backend
        if limit <= 0 or symbol_problem(symbol) is not None:
            return []
        bounds = tick_range_for_bars(start, end, interval)
        if bounds is None:
            return []
        lo, hi = self._bounds(*bounds)
        if lo is not None and hi is not None and lo >= hi:
            return []
        newest = start is None
        rows = await self._query(
            sql.select_klines(self._database, symbol, interval, lo, hi, limit, newest=newest)
        )
        return self._bars(symbol, rows, newest=newest)

    async def kline_texts(
        self,
        symbol: str,
        interval: KlineInterval,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        places: AmountPlaces,
    ) -> list[BarText]:
        """:meth:`klines`, the amounts written by Python (the REST and native clients
        hand over decoded values either way)."""
        bars = await self.klines(symbol, interval, start, end, limit)
        return [BarText.of(bar, places) for bar in bars]

    async def minute_bars(
        self, symbol: str, start: datetime | None, end: datetime | None, limit: int
    ) -> list[Bar]:
        """Imported minute bars with the same range and limit rules as :meth:`ticks`."""
        if limit <= 0 or symbol_problem(symbol) is not None:
            return []
        lo, hi = self._bounds(start, end)
        if lo is not None and hi is not None and lo >= hi:
            return []
        newest = start is None
        rows = await self._query(
            sql.select_minute_bars(self._database, symbol, lo, hi, limit, newest=newest)
        )
        return self._bars(symbol, rows, newest=newest)

    def _bars(self, symbol: str, rows: Sequence[Sequence[Any]], *, newest: bool) -> list[Bar]:
        """Decoded bars in ascending time (``newest`` queries run descending)."""
        bars = [
            Bar(
                symbol=symbol,
                time=decode_time(row[0], self._precision),
                open=decode_decimal(row[1]),
                high=decode_decimal(row[2]),
                low=decode_decimal(row[3]),
                close=decode_decimal(row[4]),
                volume=decode_decimal(row[5]),
                trade_count=int(row[6]),
            )
            for row in rows
        ]
        if newest:
            bars.reverse()
        return bars

    def _tick(self, symbol: str, row: Sequence[Any]) -> Tick:
        return Tick(
            symbol=symbol,
            time=decode_time(row[0], self._precision),
            last=decode_decimal(row[1]),
            bid=decode_decimal(row[2]),
            ask=decode_decimal(row[3]),
            volume=decode_decimal(row[4]),
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop accepting writes, give buffered rows one last chance, release connections."""
        if self._closed:
            return
        self._closed = True
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            # Wait for it to stop without re-raising whatever may have ended it.
            await asyncio.wait([flusher])
            if not flusher.cancelled() and flusher.exception() is not None:
                log.error("tdengine_flusher_failed", error=repr(flusher.exception()))
        if len(self._buffer):
            try:
                await asyncio.wait_for(self._drain(), timeout=self._close_timeout)
            except (TDengineError, TimeoutError) as error:
                log.error(
                    "tdengine_buffer_lost_on_close",
                    rows=self._buffer.rows,
                    error=str(error) or type(error).__name__,
                )
            self._buffer.clear()
        await self._pool.close()

    async def _drain(self) -> None:
        while (batch := self._buffer.peek()) is not None:
            await self._deliver(batch)
            self._buffer.discard(batch)


def _partly_applied(batch: PendingBatch) -> str:
    if not batch.next_statement:
        return ""
    return (
        f"; the first {batch.next_statement} of its {len(batch.statements)} INSERT statements "
        "had already been applied"
    )


def _rejected(batch: PendingBatch, error: TDengineError) -> str:
    applied = _partly_applied(batch) or "; nothing of it was written"
    return f"TDengine rejected a batch of {batch.rows} rows: {error}{applied}"


def _prepare_schema(
    url: TDengineURL,
    precision: Precision,
    keep_days: int | None,
    vgroups: int | None,
    conn: Connection,
) -> None:
    """Create what is missing and refuse what is incompatible (runs on a pool worker)."""
    database = url.database
    conn.execute(sql.create_database(database, precision, keep_days, vgroups))
    try:
        rows = conn.query(sql.database_precision(database))
    except TDengineError as error:
        log.warning("tdengine_precision_unchecked", database=database, error=str(error))
    else:
        actual = str(rows[0][0]).strip().lower() if rows else None
        if actual is not None and actual != precision.value:
            raise TDengineConfigError(
                f"database {database!r} already exists with precision {actual!r}, "
                f"but {precision.value!r} was requested: use another database or that precision"
            )
    conn.execute(sql.create_ticks_stable(database))
    conn.execute(sql.create_bars_1m_stable(database))
    for stable, expected in ((sql.TICKS, sql.TICKS_SCHEMA), (sql.BARS_1M, sql.BARS_1M_SCHEMA)):
        _check_schema(conn, database, stable, expected)


def _check_schema(conn: Connection, database: str, stable: str, expected: dict[str, str]) -> None:
    try:
        rows = conn.query(sql.describe(database, stable))
    except TDengineError as error:
        log.warning("tdengine_schema_unchecked", table=stable, error=str(error))
        return
    actual = {str(row[0]).lower(): str(row[1]).upper() for row in rows if len(row) >= 2}
    actual = {name: "VARCHAR" if kind == "BINARY" else kind for name, kind in actual.items()}
    if stable == sql.TICKS:
        _check_composite_key(database, rows, actual)
    wrong = {
        name: actual.get(name, "missing")
        for name, kind in expected.items()
        if actual.get(name) != kind
    }
    if wrong:
        raise TDengineConfigError(
            f"{database}.{stable} exists with an incompatible schema {wrong}; expected {expected} "
            "(prices are BIGINT scaled by 10^8: see docs/tdengine.md)"
        )


def _check_composite_key(database: str, rows: Sequence[Row], actual: dict[str, str]) -> None:
    """Refuse a ``ticks`` table whose rows are keyed by ``ts`` alone.

    Such a table (made by a version before ``seq``, or by hand) would silently
    keep only the last of several ticks with one timestamp. A primary-key column
    cannot be added to an existing table, so the store cannot migrate it in
    place; the message says how (docs/tdengine.md, "Upgrading a database").
    """
    key = sql.COMPOSITE_KEY_COLUMN
    if key not in actual:
        old_layout = set(sql.TICKS_SCHEMA) - {key}
        made_by = "an earlier quantgraph version" if set(actual) == old_layout else "another tool"
        raise TDengineConfigError(
            f"{database}.{sql.TICKS} was created by {made_by}, without the {key!r} key column: "
            "ticks with equal timestamps would overwrite each other. Point TDENGINE_URL at a "
            "new database (quantgraph creates it) and copy the old ticks over, as described "
            "under 'Upgrading a database' in docs/tdengine.md"
        )
    second = rows[1] if len(rows) > 1 else ()
    note = str(second[3]).strip().upper() if len(second) > 3 else None
    if not second or str(second[0]).lower() != key:
        raise TDengineConfigError(
            f"{database}.{sql.TICKS} has {key!r}, but not as its second column: it is not part "
            "of the row key, so ticks with equal timestamps would overwrite each other "
            "(see 'Upgrading a database' in docs/tdengine.md)"
        )
    if note is not None and note != sql.COMPOSITE_KEY_NOTE:
        raise TDengineConfigError(
            f"{database}.{sql.TICKS}.{key} is not a PRIMARY KEY column (DESCRIBE notes "
            f"{note!r}): ticks with equal timestamps would overwrite each other "
            "(see 'Upgrading a database' in docs/tdengine.md)"
        )
