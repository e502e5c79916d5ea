"""Listing symbols from CSV: ``quantgraph import-symbols``.

Every row goes through the same rules and the same writer as ``createSymbol``
(:mod:`graphql_api.instruments`): checked by
:func:`~graphql_api.instruments.drafts.check_draft`, then listed with its
audit row, its announcement and any new currency's balances by
:meth:`~graphql_api.instruments.InstrumentService.stage_create`.

Re-running a file is safe: a row identical to the symbol already listed is
counted as unchanged, not written again. A row for a listed symbol with other
values is rejected: changes go through ``updateSymbol``, whose rules (resting
orders off a new grid are canceled) an import should not apply silently.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.instruments import Actor, InstrumentService, SessionDraft, SymbolDraft
from graphql_api.instruments.drafts import WindowDraft, check_draft, session_of
from graphql_api.market.imports.bars import RejectedRow
from graphql_api.market.imports.csv_lines import CsvRows
from graphql_api.market.sessions import OffSessionOrders, SessionError, format_minute, parse_hours
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.number_text import (
    NumberOutOfRangeError,
    NumberTextError,
    parse_plain_decimal,
)
from storage import models
from storage.engine import SessionFactory

__all__ = ["CSV_COLUMNS", "SymbolCsv", "SymbolImportReport", "import_symbol_lines"]

CSV_COLUMNS = (
    "code",
    "name",
    "exchange",
    "currency",
    "tick_size",
    "lot_size",
    "session_timezone",
    "session_hours",
    "off_session_orders",
)
IMPORT_BATCH_SIZE = 500


@dataclass(slots=True)
class SymbolImportReport:
    """Rows read, listed, already listed as given, and rejected; ``errors`` are
    file-level problems (bad header, unreadable line) that stopped the import."""

    rows_read: int = 0
    rows_written: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    errors: list[UserError] = field(default_factory=list)


async def import_symbol_lines(
    instruments: InstrumentService,
    sessions: SessionFactory,
    lines: Iterable[str],
    *,
    actor: Actor,
    all_or_nothing: bool,
    batch_size: int = IMPORT_BATCH_SIZE,
) -> SymbolImportReport:
    """List the symbols of a CSV, ``batch_size`` at a time.

    Without ``all_or_nothing`` each batch is committed on its own and bad rows are
    reported; with it the whole file is one transaction, rolled back if any row
    was rejected (checking goes on, so the report lists every bad row).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    rows = SymbolCsv(lines)
    report = SymbolImportReport()
    header_error = rows.check_header()
    if header_error is not None:
        report.errors.append(header_error)
        return report
    staged = 0
    async with sessions() as session:
        try:
            for row in rows:
                if isinstance(row, RejectedRow):
                    report.rejected.append(row)
                    continue
                line, draft = row
                verdict = await _list(session, instruments, actor, line, draft)
                if isinstance(verdict, RejectedRow):
                    report.rejected.append(verdict)
                elif verdict:
                    staged += 1
                else:
                    report.unchanged += 1
                if staged >= batch_size and not all_or_nothing:
                    await session.commit()
                    report.rows_written, staged = report.rows_written + staged, 0
        except (csv.Error, UnicodeDecodeError) as problem:
            message = f"line {rows.failed_line(problem)}: {problem}"
            report.errors.append(UserError("csv", ErrorCode.INVALID, message))
        except IntegrityError:
            # Another administrator listed one of these codes meanwhile.
            await session.rollback()
            message = "a symbol of this batch was listed by someone else meanwhile; run it again"
            report.errors.append(UserError("csv", ErrorCode.CONFLICT, message))
            report.rows_read = rows.read
            return report
        report.rows_read = rows.read
        if all_or_nothing and (report.rejected or report.errors):
            await session.rollback()
            return report
        await session.commit()
        report.rows_written += staged
    return report


async def _list(
    session: AsyncSession,
    instruments: InstrumentService,
    actor: Actor,
    line: int,
    draft: SymbolDraft,
) -> RejectedRow | bool:
    """Stage one checked row: True when listed, False when listed as given already."""
    existing = await session.get(models.Symbol, draft.code)
    if existing is not None:
        if _same(existing, draft):
            return False
        return RejectedRow(
            line,
            ErrorCode.CONFLICT,
            f"{draft.code} is already listed with other values (change it with updateSymbol)",
            "already listed with other values",
        )
    row, errors = await instruments.stage_create(session, actor, draft)
    if row is None:
        return RejectedRow(line, errors[0].code, errors[0].message, errors[0].message)
    return True


def _same(row: models.Symbol, draft: SymbolDraft) -> bool:
    return (
        row.name,
        row.exchange,
        row.currency,
        row.tick_size,
        row.lot_size,
        row.trading_session,
        row.off_session_orders,
    ) == (
        draft.name,
        draft.exchange,
        draft.currency,
        draft.tick_size,
        draft.lot_size,
        session_of(draft.session).to_json(),
        draft.session.off_session_orders.value,
    )


class SymbolCsv(CsvRows):
    """The parse-and-check step: iterating yields ``(line, draft)`` for each valid,
    non-blank row (canonicalised) or a :class:`RejectedRow`. A code seen earlier in
    the file is rejected (the first one wins)."""

    def __init__(self, lines: Iterable[str]) -> None:
        super().__init__(lines, CSV_COLUMNS)
        self._first_line: dict[str, int] = {}
        self.read = 0

    def __iter__(self) -> Iterator[tuple[int, SymbolDraft] | RejectedRow]:
        for cells in self._reader:
            if not any(cell.strip() for cell in cells):
                continue
            self.read += 1
            line = self._reader.line_num
            parsed = _parse_row(cells)
            if isinstance(parsed, RejectedRow):
                yield RejectedRow(line, parsed.code, parsed.reason, parsed.kind)
                continue
            draft, errors = check_draft(parsed)
            if errors:
                first = errors[0]
                yield RejectedRow(
                    line, first.code, f"{first.field}: {first.message}", first.message
                )
            elif draft.code in self._first_line:
                yield RejectedRow(
                    line,
                    ErrorCode.CONFLICT,
                    f"duplicate code {draft.code} (first on line {self._first_line[draft.code]})",
                    "duplicate code",
                )
            else:
                self._first_line[draft.code] = line
                yield line, draft


def _parse_row(cells: Sequence[str]) -> SymbolDraft | RejectedRow:
    if len(cells) != len(CSV_COLUMNS):
        return RejectedRow(
            0,
            ErrorCode.INVALID,
            f"expected {len(CSV_COLUMNS)} columns, got {len(cells)}",
            "wrong number of columns",
        )
    code, name, exchange, currency, raw_tick, raw_lot, timezone, hours, raw_policy = cells
    steps: dict[str, Decimal] = {}
    for column, raw in (("tick_size", raw_tick), ("lot_size", raw_lot)):
        try:
            steps[column] = parse_plain_decimal(raw.strip())
        except NumberOutOfRangeError as error:
            return RejectedRow(0, ErrorCode.OUT_OF_RANGE, str(error), f"{column} is too long")
        except NumberTextError:
            return RejectedRow(
                0,
                ErrorCode.INVALID,
                f"{column} {raw!r} is not a number",
                f"{column} is not a number",
            )
    session = _parse_session(timezone, hours, raw_policy)
    if isinstance(session, RejectedRow):
        return session
    return SymbolDraft(
        code=code,
        name=name,
        exchange=exchange,
        currency=currency,
        tick_size=steps["tick_size"],
        lot_size=steps["lot_size"],
        session=session,
    )


def _parse_session(timezone: str, hours: str, raw_policy: str) -> SessionDraft | RejectedRow:
    """The three session columns: ``Asia/Shanghai``, ``MON-FRI 09:30-11:30 13:00-15:00``
    (:func:`~graphql_api.market.sessions.parse_hours`), ``REFUSE`` or ``REST`` (empty:
    REFUSE). Zone and windows are checked with the rest of the row."""
    policy_text = raw_policy.strip().upper() or OffSessionOrders.REFUSE.value
    try:
        policy = OffSessionOrders(policy_text)
    except ValueError:
        return RejectedRow(
            0,
            ErrorCode.INVALID,
            f"off_session_orders {raw_policy.strip()[:16]!r} is not REFUSE or REST",
            "off_session_orders is not REFUSE or REST",
        )
    try:
        windows = parse_hours(hours, "session_hours")
    except SessionError as error:
        return RejectedRow(0, ErrorCode.INVALID, f"{error.field}: {error.message}", error.message)
    drafts = tuple(
        WindowDraft(window.days, format_minute(window.open), format_minute(window.close))
        for window in windows
    )
    return SessionDraft(timezone.strip(), drafts, policy)
