"""An account's paper performance over a period, with a backtest's metrics.

It lives beside the backtests because it must be computed as they are.

The equity curve is the account's snapshots in one currency (end of day and
intraday, in time order). Total return, maximum drawdown and the Sharpe ratio
are computed by the very functions a backtest uses
(:mod:`graphql_api.strategies.backtest.metrics`), over the END_OF_DAY points
(one per calendar day, so 365 periods a year); the win rate is over the round
trips closed in the period, net of commission, as a backtest counts them.
A strategy's paper results and its backtest therefore compare like for like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np

from graphql_api.strategies.backtest.metrics import max_drawdown_pct, sharpe_ratio
from graphql_api.trading.equity import SnapshotKind
from graphql_api.trading.round_trips import RoundTrip
from storage import models

DAILY_PERIODS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class EquityPoint:
    time: datetime
    equity: Decimal
    cash: Decimal
    positions_value: Decimal
    kind: SnapshotKind


@dataclass(frozen=True, slots=True)
class Performance:
    currency: str
    curve: list[EquityPoint]
    total_return_pct: float | None  # None with fewer than two points or no starting equity
    max_drawdown_pct: float
    sharpe: float
    win_rate_pct: float | None  # None without a closed round trip
    round_trip_count: int
    realized_pnl: Decimal  # net of commission, over the round trips closed in the period


def performance(
    currency: str, snapshots: Sequence[models.EquitySnapshot], closed: Sequence[RoundTrip]
) -> Performance:
    """Metrics of ``snapshots`` (one currency, time order) and ``closed`` trips."""
    curve = [
        EquityPoint(row.taken_at, row.equity, row.cash, row.positions_value, SnapshotKind(row.kind))
        for row in snapshots
    ]
    daily = np.asarray(
        [float(p.equity) for p in curve if p.kind is SnapshotKind.END_OF_DAY], dtype=np.float64
    )
    first, final = (curve[0].equity, curve[-1].equity) if curve else (None, None)
    total_return = (
        float((final - first) / first) * 100.0
        if first is not None and final is not None and len(curve) > 1 and first > 0
        else None
    )
    wins = sum(1 for trip in closed if trip.net_pnl > 0)
    return Performance(
        currency=currency,
        curve=curve,
        total_return_pct=total_return,
        max_drawdown_pct=max_drawdown_pct(daily),
        sharpe=sharpe_ratio(daily, DAILY_PERIODS_PER_YEAR),
        win_rate_pct=wins / len(closed) * 100.0 if closed else None,
        round_trip_count=len(closed),
        realized_pnl=sum((trip.net_pnl for trip in closed), Decimal(0)),
    )
