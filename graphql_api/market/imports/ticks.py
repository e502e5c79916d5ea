"""Importing historical ticks from CSV (``quantgraph import-ticks``).

Column format (header required, extra columns ignored)::

    symbol,time,last,bid,ask,volume
    600519.SH,2026-03-02T01:30:00.250Z,1500.00,1499.99,1500.01,100

``time`` is ISO 8601 with a UTC offset (``Z`` or ``+08:00``); ``bid``, ``ask``
and ``volume`` may be empty (bid/ask default to last, volume to 0). A leading
byte-order mark is ignored. Each row is validated like ``ingestTicks`` (the same
time window and digit limits); valid rows are written in batches straight to
the time-series store (history is not replayed to live subscribers), invalid
ones are counted and reported with their reasons.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from graphql_api.market.imports.csv_lines import without_bom
from graphql_api.market.imports.summary import ImportSummary
from graphql_api.market.symbols import SymbolCatalog
from graphql_api.market.tick_validation import TickDraft, check_tick
from graphql_api.market.value_ranges import TimeWindow
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.number_text import NumberTextError, parse_plain_decimal
from storage.timeseries import Tick, TimeSeriesStore

__all__ = [
    "BATCH_SIZE",
    "REQUIRED_COLUMNS",
    "CsvFormatError",
    "RowProblem",
    "import_ticks",
    "own_errors",
    "parse_row",
    "row_reason",
]

REQUIRED_COLUMNS = ("symbol", "time", "last")
BATCH_SIZE = 5000


class CsvFormatError(Exception):
    """The file cannot be imported at all (missing header columns)."""


async def import_ticks(
    rows: Iterable[str],
    catalog: SymbolCatalog,
    store: TimeSeriesStore,
    *,
    window: TimeWindow,
    batch_size: int = BATCH_SIZE,
) -> ImportSummary:
    """Validate and write the ticks of a CSV stream, ``batch_size`` at a time.

    ``window`` is the time range a tick may carry (the server's settings, fixed
    when the import starts).

    Only one batch is held in memory, so files far larger than RAM import. A
    line that cannot be decoded or parsed as CSV stops the import (the rest of
    the file is suspect) and the valid rows before it are written: the
    time-series store has no transactions, so "all or nothing" is not on offer.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    summary = ImportSummary()
    reader = csv.DictReader(without_bom(rows))
    try:
        fieldnames = reader.fieldnames or []
    except (csv.Error, UnicodeDecodeError) as error:
        raise CsvFormatError(f"unreadable header: {error}") from error
    missing = [c for c in REQUIRED_COLUMNS if c not in fieldnames]
    if missing:
        raise CsvFormatError(f"missing columns: {', '.join(missing)}")
    batch: list[Tick] = []
    try:
        for line, row in _numbered(reader):
            summary.read += 1
            draft = parse_row(row)
            if isinstance(draft, RowProblem):
                summary.reject(line, draft.reason, draft.detail)
                continue
            spec = (await catalog.get_many([draft.symbol])).get(draft.symbol)
            tick, errors = check_tick(draft, spec, window, "row")
            if tick is None:
                errors = own_errors(draft, errors)
                summary.reject(
                    line,
                    "; ".join(row_reason(error) for error in errors),
                    "; ".join(error.message for error in errors),
                )
                continue
            batch.append(tick)
            if len(batch) >= batch_size:
                await store.write_ticks(batch)
                summary.written += len(batch)
                batch = []
    except UnicodeDecodeError as error:
        # The reader never got the line, so it is the one after the last counted.
        summary.stopped = f"line {reader.line_num + 1}: {error}"
    except csv.Error as error:
        summary.stopped = f"line {reader.line_num}: {error}"
    if batch:  # also when stopped: "everything before the bad line" is the simplest promise
        await store.write_ticks(batch)
        summary.written += len(batch)
    return summary


def _numbered(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str]]]:
    for row in reader:
        yield reader.line_num, row


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why a row could not even be turned into a draft tick."""

    reason: str
    detail: str


def parse_row(row: dict[str, str]) -> TickDraft | RowProblem:
    raw_time = row.get("time")
    try:
        time = datetime.fromisoformat((raw_time or "").strip().replace("Z", "+00:00"))
    except ValueError:
        return RowProblem("time is not ISO 8601", f"time {raw_time!r} is not ISO 8601")
    numbers: dict[str, Decimal] = {}
    for name in ("last", "bid", "ask", "volume"):
        raw = (row.get(name) or "").strip()
        if not raw and name != "last":
            continue  # optional: bid/ask default to last, volume to 0
        try:
            numbers[name] = parse_plain_decimal(raw)
        except NumberTextError:
            return RowProblem(
                f"{name} is not a decimal number", f"{name} {raw!r} is not a decimal number"
            )
    symbol = (row.get("symbol") or "").strip().upper()
    return TickDraft(
        symbol,
        time,
        numbers["last"],
        numbers.get("bid"),
        numbers.get("ask"),
        numbers.get("volume", Decimal(0)),
    )


def own_errors(draft: TickDraft, errors: list[UserError]) -> list[UserError]:
    """Drop an empty bid/ask column's echo of an error on ``last`` (they default to it)."""
    on_last = {error.code for error in errors if error.field == "row.last"}
    defaulted = {
        f"row.{name}" for name, value in (("bid", draft.bid), ("ask", draft.ask)) if value is None
    }
    return [error for error in errors if not (error.field in defaulted and error.code in on_last)]


def row_reason(error: UserError) -> str:
    """Group off-grid prices by column, not by value, so one cause is one summary line."""
    if error.code is ErrorCode.INVALID_PRECISION:
        return f"{error.field.rsplit('.', 1)[-1]} is not on the tick grid"
    return error.message
