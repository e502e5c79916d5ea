"""Importing historical ticks from CSV (``quantgraph import-ticks``).

Column format (header required, extra columns ignored)::

    symbol,time,last,bid,ask,volume
    600519.SH,2026-03-02T01:30:00.250Z,1500.00,1499.99,1500.01,100

``time`` is ISO 8601 with a UTC offset (``Z`` or ``+08:00``); ``bid``, ``ask``
and ``volume`` may be empty (bid/ask default to last, volume to 0). Each row is
validated like ``ingestTicks``; valid rows are written in batches straight to
the time-series store (history is not replayed to live subscribers), invalid
ones are counted and reported with their reasons.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from graphql_api.symbols import SymbolCatalog
from graphql_api.tick_validation import TickDraft, check_tick
from storage.timeseries import Tick, TimeSeriesStore

REQUIRED_COLUMNS = ("symbol", "time", "last")
BATCH_SIZE = 5000


@dataclass
class ImportSummary:
    read: int = 0
    written: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        self.reasons[reason] += 1
        if len(self.examples) < 10:
            self.examples.append(f"line {line}: {reason}")


class CsvFormatError(Exception):
    """The file cannot be imported at all (missing header columns)."""


async def import_ticks(
    rows: Iterable[str],
    catalog: SymbolCatalog,
    store: TimeSeriesStore,
    *,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportSummary:
    summary = ImportSummary()
    reader = csv.DictReader(iter(rows))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise CsvFormatError(f"missing columns: {', '.join(missing)}")
    batch: list[Tick] = []
    now = datetime.now(UTC)
    for line, row in _numbered(reader):
        summary.read += 1
        progress(1)
        draft, problem = _parse(row)
        if draft is None:
            summary.reject(line, problem)
            continue
        spec = (await catalog.get_many([draft.symbol])).get(draft.symbol)
        tick, errors = check_tick(draft, spec, now, timedelta(seconds=5), "row")
        if tick is None:
            summary.reject(line, "; ".join(e.message for e in errors))
            continue
        batch.append(tick)
        if len(batch) >= BATCH_SIZE:
            await store.write_ticks(batch)
            summary.written += len(batch)
            batch = []
    if batch:
        await store.write_ticks(batch)
        summary.written += len(batch)
    return summary


def _numbered(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str]]]:
    for row in reader:
        yield reader.line_num, row


def _parse(row: dict[str, str]) -> tuple[TickDraft | None, str]:
    try:
        time = datetime.fromisoformat(row["time"].strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None, f"time {row.get('time')!r} is not ISO 8601"
    try:
        last = Decimal(row["last"])
        bid = Decimal(row["bid"]) if row.get("bid") else None
        ask = Decimal(row["ask"]) if row.get("ask") else None
        volume = Decimal(row["volume"]) if row.get("volume") else Decimal(0)
    except (InvalidOperation, TypeError):
        return None, "a price or volume is not a decimal number"
    symbol = (row.get("symbol") or "").strip().upper()
    return TickDraft(symbol, time, last, bid, ask, volume), ""
