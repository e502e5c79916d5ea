"""Importing daily bars from CSV: the ``importBars`` mutation and ``quantgraph import-bars``.

One definition of a valid row (:class:`BarCsv`) and one writer
(:func:`import_bar_lines`, upserting by ``(symbol, day)``) serve both; the
mutation reads its text at once, the CLI streams a file of any length.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.market.imports.csv_lines import CsvRows
from graphql_api.market.symbols import SymbolCatalog, SymbolSpec, is_multiple_of
from graphql_api.market.value_ranges import TimeWindow, check_digits
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.number_text import (
    NumberOutOfRangeError,
    NumberTextError,
    parse_plain_decimal,
)
from storage import models
from storage.engine import SessionFactory

__all__ = [
    "CSV_COLUMNS",
    "IMPORT_BATCH_SIZE",
    "MAX_IMPORT_ROWS",
    "BarCsv",
    "ImportReport",
    "RejectedRow",
    "import_bar_lines",
    "import_bars",
]

MAX_IMPORT_ROWS = 100_000
IMPORT_BATCH_SIZE = 5000
CSV_COLUMNS = ("date", "open", "high", "low", "close", "volume")

_UPSERT_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A CSV row that was not imported; ``line`` counts the header as line 1.

    ``kind`` is ``reason`` without the row's values, so a report over a long
    file can group the rows that fail for the same cause.
    """

    line: int
    code: ErrorCode
    reason: str
    kind: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    """``errors`` are file-level problems (unknown symbol, bad header, too many rows,
    an unreadable line); :func:`import_bars` adds one per rejected row for an
    all-or-nothing import, which is how the mutation reports them."""

    rows_read: int
    rows_written: int
    rejected: list[RejectedRow] = field(default_factory=list)
    errors: list[UserError] = field(default_factory=list)


async def import_bars(
    catalog: SymbolCatalog,
    sessions: SessionFactory,
    symbol: str,
    text: str,
    *,
    max_age_years: int,
    max_future: timedelta,
    all_or_nothing: bool,
    max_rows: int | None = None,
) -> ImportReport:
    """Upsert daily bars by ``(symbol, day)`` from CSV text with a
    ``date,open,high,low,close,volume`` header (the ``importBars`` mutation).

    Each row is checked on its own (see :class:`BarCsv`). With
    ``all_or_nothing`` one bad row means nothing is written and every bad row
    is also an error; a file-level error replaces the per-row report, since a
    file that is too big or unreadable says nothing useful about its rows.
    Dates are accepted from ``max_age_years`` ago to ``max_future`` ahead.
    """
    window = TimeWindow.around(datetime.now(UTC), max_age_years, max_future)
    report = await import_bar_lines(
        catalog,
        sessions,
        symbol,
        io.StringIO(text),
        window=window,
        all_or_nothing=all_or_nothing,
        max_rows=max_rows,
    )
    if report.errors:
        return ImportReport(report.rows_read, report.rows_written, errors=report.errors)
    if all_or_nothing and report.rejected:
        errors = [UserError(f"csv.{row.line}", row.code, row.reason) for row in report.rejected]
        return ImportReport(report.rows_read, 0, report.rejected, errors)
    return report


async def import_bar_lines(
    catalog: SymbolCatalog,
    sessions: SessionFactory,
    symbol: str,
    lines: Iterable[str],
    *,
    window: TimeWindow,
    all_or_nothing: bool,
    max_rows: int | None = None,
    batch_size: int = IMPORT_BATCH_SIZE,
) -> ImportReport:
    """Stream a daily-bar CSV into the database, ``batch_size`` valid rows at a time.

    Only one batch is held in memory, so the file can come from disk or stdin
    at any size. Without ``all_or_nothing`` every batch is committed on its
    own: a long import does not hold a write lock throughout and what it wrote
    survives an interruption (re-running is safe, rows are upserted). With it
    the batches share one transaction, rolled back at the end if any row was
    rejected; writing stops at the first bad row but checking goes on, so the
    report lists every bad row. A file-level problem (``max_rows`` exceeded,
    an undecodable line) stops the import; the valid rows before it are
    written unless ``all_or_nothing``, as for ticks. ``window`` bounds the
    dates (fixed when the import starts).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    code = symbol.strip().upper()
    spec = (await catalog.get_many([code])).get(code)
    if spec is None:
        return ImportReport(
            0, 0, errors=[UserError("symbol", ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {code!r}")]
        )
    rows = BarCsv(lines, spec, window)
    header_error = rows.check_header()
    if header_error is not None:
        return ImportReport(0, 0, errors=[header_error])
    rejected: list[RejectedRow] = []
    batch: list[_Row] = []
    written = staged = 0
    stop: list[UserError] = []
    async with sessions() as session:
        try:
            for row in rows:
                if max_rows is not None and rows.read > max_rows:
                    message = f"at most {max_rows} rows per import"
                    stop.append(UserError("csv", ErrorCode.OUT_OF_RANGE, message))
                    break
                if isinstance(row, RejectedRow):
                    rejected.append(row)
                    continue
                if all_or_nothing and rejected:
                    continue  # it will be rolled back anyway; keep checking the rest
                batch.append(row)
                if len(batch) >= batch_size:
                    await _upsert_daily_bars(session, code, batch)
                    staged += len(batch)
                    batch = []
                    if not all_or_nothing:
                        await session.commit()
                        written, staged = written + staged, 0
        except (csv.Error, UnicodeDecodeError) as problem:
            message = f"line {rows.failed_line(problem)}: {problem}"
            stop.append(UserError("csv", ErrorCode.INVALID, message))
        if all_or_nothing and (rejected or stop):
            await session.rollback()
            return ImportReport(rows.read, 0, rejected, stop)
        await _upsert_daily_bars(session, code, batch)
        await session.commit()
    return ImportReport(rows.read, written + staged + len(batch), rejected, stop)


class BarCsv(CsvRows):
    """The parse-and-check step of a daily-bar import, separate from writing so the
    mutation and the CLI share one definition of a valid row.

    Iterating yields each non-blank data row as a valid bar or a
    :class:`RejectedRow`: the date is ``YYYY-MM-DD``, prices are positive and
    on the tick grid, ``high >= max(open, close)``, ``low <= min(open, close)``,
    volume is not negative, and no date appears twice (the first one wins).
    The date lies in ``window`` and every number fits the stores' digits (see
    :mod:`graphql_api.market.value_ranges`). A leading byte-order mark is ignored.
    Only the dates seen are remembered, so any file length streams through.
    """

    def __init__(self, lines: Iterable[str], spec: SymbolSpec, window: TimeWindow) -> None:
        super().__init__(lines, CSV_COLUMNS)
        self._spec = spec
        self._window = window
        self._first_line: dict[date, int] = {}
        self.read = 0

    def __iter__(self) -> Iterator[_Row | RejectedRow]:
        for cells in self._reader:
            if not any(cell.strip() for cell in cells):
                continue
            self.read += 1
            line = self._reader.line_num
            parsed = _parse_row(cells, self._spec, self._window)
            if isinstance(parsed, RejectedRow):
                yield RejectedRow(line, parsed.code, parsed.reason, parsed.kind)
            elif parsed.day in self._first_line:
                yield RejectedRow(
                    line,
                    ErrorCode.CONFLICT,
                    f"duplicate date {parsed.day} (first on line {self._first_line[parsed.day]})",
                    "duplicate date",
                )
            else:
                self._first_line[parsed.day] = line
                yield parsed


@dataclass(frozen=True, slots=True)
class _Row:
    day: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def _parse_row(cells: Sequence[str], spec: SymbolSpec, window: TimeWindow) -> _Row | RejectedRow:
    if len(cells) != len(CSV_COLUMNS):
        return _reject(
            ErrorCode.INVALID,
            f"expected {len(CSV_COLUMNS)} columns, got {len(cells)}",
            "wrong number of columns",
        )
    raw_date, *raw_numbers = (cell.strip() for cell in cells)
    try:
        day = date.fromisoformat(raw_date)
    except ValueError:
        return _reject(
            ErrorCode.INVALID,
            f"date {raw_date!r} is not a YYYY-MM-DD date",
            "date is not YYYY-MM-DD",
        )
    out_of_window = window.check_day(day, "date")
    if out_of_window is not None:
        return _reject(out_of_window.code, out_of_window.message, "date is out of range")
    numbers: dict[str, Decimal] = {}
    for name, raw in zip(CSV_COLUMNS[1:], raw_numbers, strict=True):
        try:
            value = parse_plain_decimal(raw)
        except NumberOutOfRangeError as error:
            return _reject(ErrorCode.OUT_OF_RANGE, str(error), f"{name} has too many digits")
        except NumberTextError:
            return _reject(
                ErrorCode.INVALID, f"{name} {raw!r} is not a number", f"{name} is not a number"
            )
        if not value.is_finite():
            return _reject(
                ErrorCode.INVALID,
                f"{name} {raw!r} is not a finite number",
                f"{name} is not a finite number",
            )
        too_long = check_digits(value, name, name)
        if too_long is not None:
            return _reject(too_long.code, too_long.message, f"{name} has too many digits")
        numbers[name] = value
    for name in ("open", "high", "low", "close"):
        price = numbers[name]
        if price <= 0:
            return _reject(
                ErrorCode.OUT_OF_RANGE,
                f"{name} must be positive, got {price}",
                f"{name} is not positive",
            )
        if not is_multiple_of(price, spec.tick_size):
            return _reject(
                ErrorCode.INVALID_PRECISION,
                f"{name} {price} is not a multiple of the tick size {spec.tick_size}",
                f"{name} is not on the {spec.tick_size} tick grid",
            )
    opening, high, low, close = (numbers[n] for n in ("open", "high", "low", "close"))
    if high < max(opening, close):
        return _reject(
            ErrorCode.INVALID, f"high {high} is below open or close", "high is below open or close"
        )
    if low > min(opening, close):
        return _reject(
            ErrorCode.INVALID, f"low {low} is above open or close", "low is above open or close"
        )
    if numbers["volume"] < 0:
        return _reject(
            ErrorCode.OUT_OF_RANGE,
            f"volume must not be negative, got {numbers['volume']}",
            "volume is negative",
        )
    return _Row(day, opening, high, low, close, numbers["volume"])


def _reject(code: ErrorCode, reason: str, kind: str) -> RejectedRow:
    """A rejection whose line the caller fills in (the parser does not know it)."""
    return RejectedRow(0, code, reason, kind)


async def _upsert_daily_bars(session: AsyncSession, symbol: str, rows: Sequence[_Row]) -> None:
    """INSERT ... ON CONFLICT (symbol_code, day) DO UPDATE, in chunks (both dialects support it)."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = models.DailyBar.__table__
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.symbol_code, table.c.day],
        set_={
            name: statement.excluded[name] for name in ("open", "high", "low", "close", "volume")
        },
    )
    for offset in range(0, len(rows), _UPSERT_CHUNK):
        chunk = rows[offset : offset + _UPSERT_CHUNK]
        await session.execute(
            statement,
            [
                {
                    "symbol_code": symbol,
                    "day": row.day,
                    "open": row.open,
                    "high": row.high,
                    "low": row.low,
                    "close": row.close,
                    "volume": row.volume,
                }
                for row in chunk
            ],
        )
