"""Backtest metrics (Sharpe ratio, maximum drawdown, CAGR) checked against hand arithmetic."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from graphql_api.strategies.backtest.metrics import cagr_pct, max_drawdown_pct, sharpe_ratio

D = Decimal


def test_sharpe_ratio_by_hand() -> None:
    # Returns +10%, -10%, +10%: mean 1/30; deviations 1/15, -2/15, 1/15; sample variance
    # (1 + 4 + 1) / 225 / 2 = 1/75.
    equity = np.array([100.0, 110.0, 99.0, 108.9])
    assert sharpe_ratio(equity, 252) == pytest.approx((1 / 30) * math.sqrt(75) * math.sqrt(252))
    assert sharpe_ratio(np.array([100.0, 100.0, 100.0]), 252) == 0.0


def test_max_drawdown_takes_the_worst_peak_to_trough() -> None:
    # 120 -> 90 is 25%; 130 -> 117 only 10%.
    assert max_drawdown_pct(np.array([100.0, 120.0, 90.0, 130.0, 117.0])) == pytest.approx(25.0)


def test_cagr_by_hand() -> None:
    assert cagr_pct(D(100), D(121), years=2.0) == pytest.approx(10.0)
    assert cagr_pct(D(100), D(50), years=0.0) is None
    assert cagr_pct(D(100), D(200), years=1e-6) is None  # overflows a float: undefined
