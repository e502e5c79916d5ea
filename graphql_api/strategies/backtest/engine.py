"""Backtest a strategy kind over bars: numpy for signals and the equity curve, Decimal for money.

Fill model
----------
- A signal is decided on a bar's close and filled at the *next* bar's open;
  a signal on the last bar is ignored (there is no next open).
- Long-only (default): a buy opens a long when flat, a sell closes it; other
  signals are ignored.
- ``allow_short``: stop-and-reverse. A sell closes a long (if any) and opens
  a short; a buy closes a short (if any) and opens a long; both fill at the
  same open. A signal in the direction already held is ignored.
- Sizing: the largest multiple of ``lot_size`` whose notional plus
  commission fits in the cash available (``q * price * (1 + rate) <= cash``,
  checked again after rounding the commission); shorts are sized the same
  way (100% margin). ``fixed_quantity`` trades that quantity instead, and an
  entry whose notional plus commission exceeds the cash is skipped (no
  leverage).
- Commission: ``rate * notional`` on every fill, rounded to 8 decimal places
  ROUND_HALF_UP.
- A position still open after the last bar is closed at the last bar's
  close (commission charged) and counts as a trade.

Only the fills loop runs in Python, once per signal that changes the
position, with exact Decimal arithmetic: ``final_equity == initial_cash +
sum(trade.pnl)`` holds exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import (
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Literal

import numpy as np
import numpy.typing as npt

from graphql_api.market.indicators import FloatArray
from graphql_api.strategies.backtest.bars import Bars, TimeArray
from graphql_api.strategies.backtest.metrics import (
    SECONDS_PER_YEAR,
    cagr_pct,
    max_drawdown_pct,
    sharpe_ratio,
)
from graphql_api.strategies.rules import signals

__all__ = ["COMMISSION_QUANTUM", "BacktestResult", "Trade", "run_backtest"]

COMMISSION_QUANTUM = Decimal("0.00000001")

# 40 significant digits: every product and sum of realistic prices,
# quantities and cash balances is exact, so the P&L identity holds.
_MONEY = Context(
    prec=40, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip. ``pnl`` is net of both commissions; ``return_pct`` is
    ``pnl`` over the entry notional."""

    side: Literal["LONG", "SHORT"]
    quantity: Decimal
    entry_index: int
    entry_time: datetime
    entry_price: Decimal
    exit_index: int
    exit_time: datetime
    exit_price: Decimal
    commission: Decimal
    pnl: Decimal
    return_pct: float


@dataclass(frozen=True, slots=True, eq=False)
class BacktestResult:
    """Outcome of :func:`run_backtest`.

    ``equity`` is marked to market at each bar's close, as float (a chart,
    not a ledger); its last point is the final equity after the closing
    fill. ``exposure_pct`` counts the bars at whose close a position was held.
    """

    initial_cash: Decimal
    final_equity: Decimal
    total_commission: Decimal
    total_return_pct: float
    cagr_pct: float | None
    sharpe: float
    max_drawdown_pct: float
    win_rate_pct: float | None
    trade_count: int
    exposure_pct: float
    times: TimeArray
    equity: FloatArray
    trades: tuple[Trade, ...]


def run_backtest(
    bars: Bars,
    kind: str,
    params: Mapping[str, object],
    *,
    initial_cash: Decimal,
    commission_rate: Decimal,
    lot_size: Decimal,
    periods_per_year: float,
    allow_short: bool = False,
    fixed_quantity: Decimal | None = None,
) -> BacktestResult:
    """Backtest ``kind`` with ``params`` over ``bars`` under the module's fill model.

    ``periods_per_year`` (bars per year, e.g. 252 for daily stock bars) only
    annualises the Sharpe ratio; CAGR uses the calendar time between the
    first and the last bar. Raises ``ValueError`` for unusable settings and
    ``InvalidParametersError`` for bad strategy parameters.
    """
    _check_settings(bars, initial_cash, commission_rate, lot_size, periods_per_year, fixed_quantity)
    raw = signals(kind, params, bars.close, bars.high, bars.low)
    with localcontext(_MONEY):
        ledger = _Ledger(bars, initial_cash, commission_rate, lot_size, fixed_quantity)
        ledger.replay(raw, allow_short)
        ledger.close_at_end()
    equity, held = ledger.equity_curve()
    trades = tuple(ledger.trades)
    elapsed = (bars.times[-1] - bars.times[0]) / np.timedelta64(1, "s")
    wins = sum(1 for trade in trades if trade.pnl > 0)
    return BacktestResult(
        initial_cash=initial_cash,
        final_equity=ledger.cash,
        total_commission=sum((t.commission for t in trades), _ZERO),
        total_return_pct=float((ledger.cash - initial_cash) / initial_cash * _HUNDRED),
        cagr_pct=cagr_pct(initial_cash, ledger.cash, float(elapsed) / SECONDS_PER_YEAR),
        sharpe=sharpe_ratio(equity, periods_per_year),
        max_drawdown_pct=max_drawdown_pct(equity),
        win_rate_pct=wins / len(trades) * 100.0 if trades else None,
        trade_count=len(trades),
        exposure_pct=float(np.count_nonzero(held)) / len(bars) * 100.0,
        times=bars.times,
        equity=equity,
        trades=trades,
    )


@dataclass(slots=True)
class _Position:
    direction: int  # +1 long, -1 short
    quantity: Decimal
    entry_index: int
    entry_price: Decimal
    entry_commission: Decimal


class _Ledger:
    """Cash, the open position and the trades, plus the state after each fill bar.

    The recorded states (bar, cash, signed quantity) are all the equity
    curve needs: between fills, equity is ``cash + quantity * close``.
    """

    def __init__(
        self,
        bars: Bars,
        initial_cash: Decimal,
        rate: Decimal,
        lot: Decimal,
        fixed_quantity: Decimal | None,
    ) -> None:
        self._bars = bars
        self._initial_cash = initial_cash
        self._rate = rate
        self._lot = lot
        self._fixed_quantity = fixed_quantity
        self.cash = initial_cash
        self.position: _Position | None = None
        self.trades: list[Trade] = []
        self._state_bars: list[int] = []
        self._state_cash: list[float] = []
        self._state_quantity: list[float] = []
        self._closed_at_end = False

    def replay(self, raw: npt.NDArray[np.int8], allow_short: bool) -> None:
        actionable = np.flatnonzero(raw[:-1])  # a last-bar signal has no next open
        for index, direction in zip(actionable.tolist(), raw[actionable].tolist(), strict=True):
            held = 0 if self.position is None else self.position.direction
            if direction == held or (direction == -1 and held == 0 and not allow_short):
                continue
            fill_index = index + 1
            price = self._bars.open_price(fill_index)
            if self.position is not None:
                self._close(fill_index, price)
            if direction == 1 or allow_short:
                self._open(direction, fill_index, price)
            self._record(fill_index)

    def close_at_end(self) -> None:
        if self.position is not None:
            last = len(self._bars) - 1
            self._close(last, self._bars.close_price(last))
            self._closed_at_end = True

    def equity_curve(self) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Equity at every close, and whether a position was held at that close."""
        count = len(self._bars)
        cash = np.asarray([float(self._initial_cash), *self._state_cash], dtype=np.float64)
        quantity = np.asarray([0.0, *self._state_quantity], dtype=np.float64)
        # State s holds from its fill bar up to the bar before the next fill.
        starts = np.asarray([0, *self._state_bars], dtype=np.int64)
        lengths = np.diff(np.append(starts, count))
        held_quantity = np.repeat(quantity, lengths)
        equity = np.repeat(cash, lengths) + held_quantity * self._bars.close
        if self._closed_at_end:
            equity[-1] = float(self.cash)
        return equity, held_quantity != 0.0

    def _open(self, direction: int, index: int, price: Decimal) -> None:
        quantity = self._fixed_quantity or self._affordable_quantity(price)
        notional = quantity * price
        commission = self._commission(notional)
        if quantity <= 0 or notional + commission > self.cash:
            return
        self.cash += -(notional + commission) if direction == 1 else notional - commission
        self.position = _Position(direction, quantity, index, price, commission)

    def _close(self, index: int, price: Decimal) -> None:
        position = self.position
        assert position is not None
        self.position = None
        notional = position.quantity * price
        commission = self._commission(notional)
        if position.direction == 1:
            self.cash += notional - commission
            gross = (price - position.entry_price) * position.quantity
        else:
            self.cash -= notional + commission
            gross = (position.entry_price - price) * position.quantity
        total_commission = position.entry_commission + commission
        pnl = gross - total_commission
        entry_notional = position.quantity * position.entry_price
        self.trades.append(
            Trade(
                side="LONG" if position.direction == 1 else "SHORT",
                quantity=position.quantity,
                entry_index=position.entry_index,
                entry_time=self._bars.time_at(position.entry_index),
                entry_price=position.entry_price,
                exit_index=index,
                exit_time=self._bars.time_at(index),
                exit_price=price,
                commission=total_commission,
                pnl=pnl,
                return_pct=float(pnl / entry_notional * _HUNDRED),
            )
        )

    def _record(self, index: int) -> None:
        self._state_bars.append(index)
        self._state_cash.append(float(self.cash))
        position = self.position
        self._state_quantity.append(
            0.0 if position is None else position.direction * float(position.quantity)
        )

    def _affordable_quantity(self, price: Decimal) -> Decimal:
        if self.cash <= 0:
            return _ZERO
        lots = (self.cash / (price * (_ONE + self._rate) * self._lot)).to_integral_value(
            rounding=ROUND_FLOOR
        )
        quantity = lots.quantize(_ONE) * self._lot
        # The quotient is rounded and the commission rounded half up, so the
        # estimate can be one lot too many; the check below is exact.
        while quantity > 0 and quantity * price + self._commission(quantity * price) > self.cash:
            quantity -= self._lot
        return quantity

    def _commission(self, notional: Decimal) -> Decimal:
        return (notional * self._rate).quantize(COMMISSION_QUANTUM, rounding=ROUND_HALF_UP)


def _check_settings(
    bars: Bars,
    initial_cash: Decimal,
    commission_rate: Decimal,
    lot_size: Decimal,
    periods_per_year: float,
    fixed_quantity: Decimal | None,
) -> None:
    if len(bars) == 0:
        raise ValueError("a backtest needs at least one bar")
    if not (initial_cash.is_finite() and initial_cash > 0):
        raise ValueError(f"initial_cash must be positive, got {initial_cash}")
    if not (commission_rate.is_finite() and 0 <= commission_rate < 1):
        raise ValueError(f"commission_rate must be in [0, 1), got {commission_rate}")
    if not (lot_size.is_finite() and lot_size > 0):
        raise ValueError(f"lot_size must be positive, got {lot_size}")
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    if fixed_quantity is not None and not (
        fixed_quantity.is_finite() and fixed_quantity > 0 and fixed_quantity % lot_size == 0
    ):
        raise ValueError(
            f"fixed_quantity must be a positive multiple of lot_size ({lot_size}), "
            f"got {fixed_quantity}"
        )
