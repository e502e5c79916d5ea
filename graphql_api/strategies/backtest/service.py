"""Backtests over stored bars, and importing daily bars from CSV.

``run_backtest`` validates a request, loads the bars (the daily-bar table for
``1d``, bars aggregated from stored ticks for intraday intervals) and runs
:func:`graphql_api.strategies.backtest.run_backtest` in a worker thread, so a long
backtest never blocks the event loop: the other requests, subscriptions and
the strategy engine keep running meanwhile. The numpy kernels release the GIL
for most of their work; the short Python parts share it with the loop.

Sharpe ratios are annualised with ``periods_per_year`` bars per year:

- daily bars: 252 trading days for SSE and SZSE, 365 for BINANCE (24/7);
- intraday bars: trading days x trading hours per day x bars per hour, with
  4 trading hours a day for SSE/SZSE and 24 for BINANCE (e.g. 1m on SSE:
  252 x 240 = 60,480; 1h on BINANCE: 365 x 24 = 8,760). Other exchanges
  count 252 days of 6.5 hours.

CAGR uses calendar time and is independent of this.
"""

from __future__ import annotations

import asyncio
import csv
import enum
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, DecimalException
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.market.imports.csv_lines import without_bom
from graphql_api.market.symbols import SymbolCatalog, SymbolSpec, is_multiple_of
from graphql_api.market.value_ranges import TimeWindow, check_digits
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.number_text import (
    NumberOutOfRangeError,
    NumberTextError,
    parse_plain_decimal,
)
from graphql_api.services import Services
from graphql_api.strategies import backtest
from graphql_api.strategies.definitions import parameter_errors
from graphql_api.strategies.rules import validate_parameters, warmup_bars
from storage import models
from storage.engine import SessionFactory
from storage.repositories import symbols as symbol_repo
from storage.timeseries import KlineInterval
from storage.timeseries.buckets import day_range_for_bars

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_COMMISSION_RATE",
    "DEFAULT_INITIAL_CASH",
    "IMPORT_BATCH_SIZE",
    "MAX_BACKTEST_AMOUNT",
    "MAX_BACKTEST_BARS",
    "MAX_IMPORT_ROWS",
    "BacktestOutcome",
    "BacktestRequest",
    "BarCsv",
    "ImportReport",
    "PreparedBacktest",
    "RejectedRow",
    "TradeSide",
    "compute_backtest",
    "import_bar_lines",
    "import_bars",
    "periods_per_year",
    "prepare_backtest",
    "run_backtest",
]

MAX_BACKTEST_BARS = 200_000
MAX_IMPORT_ROWS = 100_000
IMPORT_BATCH_SIZE = 5000
DEFAULT_INITIAL_CASH = Decimal(1_000_000)
# Largest initialCash or fixedQuantity: a quadrillion, far beyond any account,
# keeps the ledger's products within its 40 exact digits for realistic prices.
MAX_BACKTEST_AMOUNT = Decimal(10**15)
DEFAULT_COMMISSION_RATE = Decimal("0.0003")
CSV_COLUMNS = ("date", "open", "high", "low", "close", "volume")

ROUND_THE_CLOCK = frozenset({"BINANCE"})
TRADING_HOURS = {"SSE": 4.0, "SZSE": 4.0}
DEFAULT_TRADING_HOURS = 6.5
TRADING_DAYS = 252

_UPSERT_CHUNK = 1000


class TradeSide(enum.Enum):
    LONG = "LONG"
    SHORT = "SHORT"


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    """A backtest of ``kind`` over the bars whose start lies in ``[start, end)``.

    Naive ``start``/``end`` are read as UTC.
    """

    kind: str
    parameters: Mapping[str, Any]
    symbol: str
    start: datetime
    end: datetime
    interval: KlineInterval = KlineInterval.DAY_1
    initial_cash: Decimal = DEFAULT_INITIAL_CASH
    commission_rate: Decimal = DEFAULT_COMMISSION_RATE
    allow_short: bool = False
    fixed_quantity: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PreparedBacktest:
    """A validated request with its bars loaded: everything the computation needs."""

    bars: backtest.Bars
    kind: str
    parameters: Mapping[str, Any]
    initial_cash: Decimal
    commission_rate: Decimal
    lot_size: Decimal
    periods_per_year: float
    allow_short: bool
    fixed_quantity: Decimal | None


@dataclass(frozen=True, slots=True)
class BacktestOutcome:
    result: backtest.BacktestResult | None
    errors: list[UserError]


async def run_backtest(services: Services, request: BacktestRequest) -> BacktestOutcome:
    prepared, errors = await prepare_backtest(services, request)
    if prepared is None:
        return BacktestOutcome(None, errors)
    try:
        return BacktestOutcome(await compute_backtest(prepared), [])
    except DecimalException:
        # The ledger computes exactly (40 digits) and traps instead of rounding:
        # amounts within the limits below fit, but stored prices can be large too.
        return BacktestOutcome(
            None,
            [
                UserError(
                    "initialCash",
                    ErrorCode.OUT_OF_RANGE,
                    "the amounts are too large to compute exactly; "
                    "use a smaller initialCash or fixedQuantity",
                )
            ],
        )


async def compute_backtest(prepared: PreparedBacktest) -> backtest.BacktestResult:
    """The CPU-bound part, in a worker thread."""
    return await asyncio.to_thread(
        backtest.run_backtest,
        prepared.bars,
        prepared.kind,
        prepared.parameters,
        initial_cash=prepared.initial_cash,
        commission_rate=prepared.commission_rate,
        lot_size=prepared.lot_size,
        periods_per_year=prepared.periods_per_year,
        allow_short=prepared.allow_short,
        fixed_quantity=prepared.fixed_quantity,
    )


async def prepare_backtest(
    services: Services, request: BacktestRequest
) -> tuple[PreparedBacktest | None, list[UserError]]:
    """Validate the request and load its bars; user errors for anything unusable."""
    symbol = request.symbol.strip().upper()
    spec = (await services.catalog.get_many([symbol])).get(symbol)
    parameters, errors = _check_request(request, spec)
    if errors or spec is None:
        return None, errors
    start, end = _utc(request.start), _utc(request.end)
    loaded = await _load_bars(services, symbol, request.interval, start, end)
    if len(loaded) > MAX_BACKTEST_BARS:
        return None, [
            UserError(
                "from",
                ErrorCode.OUT_OF_RANGE,
                f"the range holds more than {MAX_BACKTEST_BARS} bars; narrow it",
            )
        ]
    needed = warmup_bars(request.kind, parameters) + 2
    if len(loaded) < needed:
        return None, [
            UserError(
                "from",
                ErrorCode.OUT_OF_RANGE,
                f"the range holds {len(loaded)} {request.interval.value} bars of {symbol}; "
                f"{request.kind} with these parameters needs at least {needed}",
            )
        ]
    bars = backtest.Bars.from_decimals(
        [bar[0] for bar in loaded],
        [bar[1] for bar in loaded],
        [bar[2] for bar in loaded],
        [bar[3] for bar in loaded],
        [bar[4] for bar in loaded],
    )
    return (
        PreparedBacktest(
            bars=bars,
            kind=request.kind,
            parameters=parameters,
            initial_cash=request.initial_cash,
            commission_rate=request.commission_rate,
            lot_size=spec.lot_size,
            periods_per_year=periods_per_year(spec.exchange, request.interval),
            allow_short=request.allow_short,
            fixed_quantity=request.fixed_quantity,
        ),
        [],
    )


def periods_per_year(exchange: str, interval: KlineInterval) -> float:
    """Bars per year for annualising the Sharpe ratio (see the module docstring)."""
    if exchange in ROUND_THE_CLOCK:
        days, hours = 365, 24.0
    else:
        days, hours = TRADING_DAYS, TRADING_HOURS.get(exchange, DEFAULT_TRADING_HOURS)
    if interval is KlineInterval.DAY_1:
        return float(days)
    return days * hours * 3600 / interval.seconds


def _check_request(
    request: BacktestRequest, spec: SymbolSpec | None
) -> tuple[dict[str, Any], list[UserError]]:
    normalised, problems = validate_parameters(request.kind, request.parameters)
    errors = parameter_errors(problems)
    if spec is None:
        errors.append(
            UserError("symbol", ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {request.symbol!r}")
        )
    if _utc(request.start) >= _utc(request.end):
        errors.append(UserError("to", ErrorCode.INVALID, "to must be after from"))
    if not (request.initial_cash.is_finite() and 0 < request.initial_cash <= MAX_BACKTEST_AMOUNT):
        errors.append(
            UserError(
                "initialCash",
                ErrorCode.OUT_OF_RANGE,
                f"initialCash must be positive and at most {MAX_BACKTEST_AMOUNT}",
            )
        )
    rate = request.commission_rate
    if not (rate.is_finite() and 0 <= rate < 1):
        errors.append(
            UserError("commission", ErrorCode.OUT_OF_RANGE, "commission must be a rate in [0, 1)")
        )
    quantity = request.fixed_quantity
    if quantity is not None:
        if not (quantity.is_finite() and 0 < quantity <= MAX_BACKTEST_AMOUNT):
            errors.append(
                UserError(
                    "fixedQuantity",
                    ErrorCode.OUT_OF_RANGE,
                    f"fixedQuantity must be positive and at most {MAX_BACKTEST_AMOUNT}",
                )
            )
        elif spec is not None and not is_multiple_of(quantity, spec.lot_size):
            errors.append(
                UserError(
                    "fixedQuantity",
                    ErrorCode.INVALID_PRECISION,
                    f"fixedQuantity {quantity} is not a multiple of the lot size {spec.lot_size}",
                )
            )
    return normalised, errors


_LoadedBar = tuple[datetime, Decimal, Decimal, Decimal, Decimal]


async def _load_bars(
    services: Services, symbol: str, interval: KlineInterval, start: datetime, end: datetime
) -> list[_LoadedBar]:
    limit = MAX_BACKTEST_BARS + 1
    if interval.is_intraday:
        bars = await services.timeseries.klines(symbol, interval, start, end, limit)
        return [(b.time, b.open, b.high, b.low, b.close) for b in bars]
    days = day_range_for_bars(start, end)
    if days is None:
        return []
    async with services.sessions() as session:
        rows = await symbol_repo.daily_bars(
            session, symbol, start=days[0], end=days[1], limit=limit
        )
    return [
        (datetime.combine(r.day, time(0), tzinfo=UTC), r.open, r.high, r.low, r.close) for r in rows
    ]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- CSV import of daily bars ----------------------------------------------------------------


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
    services: Services,
    symbol: str,
    text: str,
    *,
    all_or_nothing: bool,
    max_rows: int | None = None,
) -> ImportReport:
    """Upsert daily bars by ``(symbol, day)`` from CSV text with a
    ``date,open,high,low,close,volume`` header (the ``importBars`` mutation).

    Each row is checked on its own (see :class:`BarCsv`). With
    ``all_or_nothing`` one bad row means nothing is written and every bad row
    is also an error; a file-level error replaces the per-row report, since a
    file that is too big or unreadable says nothing useful about its rows.
    """
    settings = services.settings
    window = TimeWindow.around(
        datetime.now(UTC),
        settings.max_bar_age_years,
        timedelta(seconds=settings.max_tick_future_seconds),
    )
    report = await import_bar_lines(
        services.catalog,
        services.sessions,
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


class BarCsv:
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
        self._reader = csv.reader(without_bom(lines))
        self._spec = spec
        self._window = window
        self._first_line: dict[date, int] = {}
        self.read = 0

    def check_header(self) -> UserError | None:
        try:
            header = next(self._reader, None)
        except (csv.Error, UnicodeDecodeError) as error:
            return UserError("csv", ErrorCode.INVALID, f"line 1: {error}")
        if header is None or tuple(cell.strip().lower() for cell in header) != CSV_COLUMNS:
            return UserError(
                "csv",
                ErrorCode.INVALID,
                f"the first line must be the header {','.join(CSV_COLUMNS)}",
            )
        return None

    def failed_line(self, error: Exception) -> int:
        """The line an exception from iterating came from."""
        # A decode error happens before the reader counts the line; a csv.Error after.
        return self._reader.line_num + (1 if isinstance(error, UnicodeDecodeError) else 0)

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
