"""Backtests over stored bars (daily bars come in through :mod:`graphql_api.market.imports.bars`).

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
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal, DecimalException
from typing import Any

from graphql_api.market.symbols import SymbolCatalog, SymbolSpec, is_multiple_of
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.strategies import backtest
from graphql_api.strategies.definitions import parameter_errors
from graphql_api.strategies.rules import validate_parameters, warmup_bars
from storage.engine import SessionFactory
from storage.repositories import symbols as symbol_repo
from storage.timeseries import KlineInterval, TimeSeriesStore
from storage.timeseries.buckets import day_range_for_bars

__all__ = [
    "DEFAULT_COMMISSION_RATE",
    "DEFAULT_INITIAL_CASH",
    "MAX_BACKTEST_AMOUNT",
    "MAX_BACKTEST_BARS",
    "BacktestOutcome",
    "BacktestRequest",
    "PreparedBacktest",
    "TradeSide",
    "compute_backtest",
    "periods_per_year",
    "prepare_backtest",
    "run_backtest",
]

MAX_BACKTEST_BARS = 200_000
DEFAULT_INITIAL_CASH = Decimal(1_000_000)
# Largest initialCash or fixedQuantity: a quadrillion, far beyond any account,
# keeps the ledger's products within its 40 exact digits for realistic prices.
MAX_BACKTEST_AMOUNT = Decimal(10**15)
DEFAULT_COMMISSION_RATE = Decimal("0.0003")

ROUND_THE_CLOCK = frozenset({"BINANCE"})
TRADING_HOURS = {"SSE": 4.0, "SZSE": 4.0}
DEFAULT_TRADING_HOURS = 6.5
TRADING_DAYS = 252


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


async def run_backtest(
    sessions: SessionFactory,
    catalog: SymbolCatalog,
    timeseries: TimeSeriesStore,
    request: BacktestRequest,
) -> BacktestOutcome:
    """Validate, load and compute: the ``runBacktest`` query. Bars are read from
    ``sessions`` (daily) or ``timeseries`` (intraday); ``catalog`` knows the symbols."""
    prepared, errors = await prepare_backtest(sessions, catalog, timeseries, request)
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
    sessions: SessionFactory,
    catalog: SymbolCatalog,
    timeseries: TimeSeriesStore,
    request: BacktestRequest,
) -> tuple[PreparedBacktest | None, list[UserError]]:
    """Validate the request and load its bars; user errors for anything unusable."""
    symbol = request.symbol.strip().upper()
    spec = (await catalog.get_many([symbol])).get(symbol)
    parameters, errors = _check_request(request, spec)
    if errors or spec is None:
        return None, errors
    start, end = _utc(request.start), _utc(request.end)
    loaded = await _load_bars(sessions, timeseries, symbol, request.interval, start, end)
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
    sessions: SessionFactory,
    timeseries: TimeSeriesStore,
    symbol: str,
    interval: KlineInterval,
    start: datetime,
    end: datetime,
) -> list[_LoadedBar]:
    limit = MAX_BACKTEST_BARS + 1
    if interval.is_intraday:
        bars = await timeseries.klines(symbol, interval, start, end, limit)
        return [(b.time, b.open, b.high, b.low, b.close) for b in bars]
    days = day_range_for_bars(start, end)
    if days is None:
        return []
    async with sessions() as session:
        rows = await symbol_repo.daily_bars(
            session, symbol, start=days[0], end=days[1], limit=limit
        )
    return [
        (datetime.combine(r.day, time(0), tzinfo=UTC), r.open, r.high, r.low, r.close) for r in rows
    ]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
