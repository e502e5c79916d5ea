"""The bar-by-bar indicators give the vectorised values at every bar.

Values are compared to 1e-9 relative; for indicators that are differences of
prices (MACD, its histogram), whose true value can be ~0, the absolute floor
is 1e-9 of the price level, which is the scale their rounding errors live on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api.market.indicators import (
    IncrementalATR,
    IncrementalBollinger,
    IncrementalEMA,
    IncrementalMACD,
    IncrementalRSI,
    IncrementalSMA,
    atr,
    bollinger,
    ema,
    macd,
    rsi,
    sma,
)


def assert_agrees(live: Sequence[float | None], vectorised: np.ndarray, scale: float) -> None:
    assert len(live) == vectorised.size
    for index, (got, want) in enumerate(zip(live, vectorised.tolist(), strict=True)):
        if math.isnan(want):
            assert got is None, f"bar {index}: expected no value yet, got {got}"
        else:
            assert got is not None, f"bar {index}: expected {want}, got None"
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9 * scale), f"bar {index}"


def check_all(closes: np.ndarray, period: int) -> None:
    prices = closes.tolist()
    highs = (closes * 1.01).tolist()
    lows = (closes * 0.985).tolist()
    scale = max(prices)

    moving = IncrementalSMA(period)
    assert_agrees([moving.update(p) for p in prices], sma(closes, period), scale)

    exponential = IncrementalEMA(period)
    assert_agrees([exponential.update(p) for p in prices], ema(closes, period), scale)

    strength = IncrementalRSI(period)
    assert_agrees([strength.update(p) for p in prices], rsi(closes, period), 100.0)

    bands = IncrementalBollinger(period, 2.0)
    points = [bands.update(p) for p in prices]
    expected_bands = bollinger(closes, period, 2.0)
    for name in ("upper", "middle", "lower"):
        values = [None if point is None else getattr(point, name) for point in points]
        assert_agrees(values, getattr(expected_bands, name), scale)

    average_range = IncrementalATR(period)
    assert_agrees(
        [average_range.update(h, lo, c) for h, lo, c in zip(highs, lows, prices, strict=True)],
        atr(np.array(highs), np.array(lows), closes, period),
        scale,
    )

    fast, slow, signal = max(1, period // 2), period + 1, max(1, period // 3)
    convergence = IncrementalMACD(fast, slow, signal)
    macd_points = [convergence.update(p) for p in prices]
    expected = macd(closes, fast, slow, signal)
    assert_agrees([None if m is None else m.macd for m in macd_points], expected.macd, scale)
    assert_agrees([None if m is None else m.signal for m in macd_points], expected.signal, scale)
    assert_agrees(
        [None if m is None else m.histogram for m in macd_points], expected.histogram, scale
    )


walks = st.builds(
    lambda start, steps: np.cumprod([start, *(1 + s / 1000 for s in steps)]),
    st.floats(0.5, 50_000.0),
    st.lists(st.integers(-60, 60), min_size=0, max_size=300),
)


@settings(max_examples=80, deadline=None)
@given(walks, st.integers(1, 40))
def test_incremental_indicators_agree_with_vectorised_on_random_walks(
    closes: np.ndarray, period: int
) -> None:
    check_all(closes, period)


@pytest.mark.parametrize("period", [2, 14, 26, 150])
def test_agreement_holds_over_a_long_series(period: int) -> None:
    # Long enough to cross many smoothing blocks and the periodic exact resyncs.
    rng = np.random.default_rng(period)
    closes = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 6_000)))
    check_all(closes, period)


def test_flat_prices_keep_a_zero_band_width() -> None:
    bands = IncrementalBollinger(5, 2.0)
    points = [bands.update(101.37) for _ in range(40)]
    for point in points[4:]:
        assert point is not None
        assert point.upper == pytest.approx(101.37, rel=1e-15)
        assert point.lower == pytest.approx(101.37, rel=1e-15)


def test_macd_reports_its_line_before_its_signal() -> None:
    convergence = IncrementalMACD(2, 3, 2)
    points = [convergence.update(p) for p in [5.0, 4.0, 6.0, 3.0]]
    assert points[:2] == [None, None]
    first = points[2]
    assert first is not None
    assert first.macd == 0.0  # both EMAs seeded at bar 2 with (4+6)/2 and (5+4+6)/3
    assert first.signal is None and first.histogram is None
    assert points[3] is not None and points[3].signal == pytest.approx(-1 / 6)


def test_invalid_periods_are_rejected() -> None:
    with pytest.raises(ValueError, match="period"):
        IncrementalSMA(0)
    with pytest.raises(ValueError, match="less than slow"):
        IncrementalMACD(26, 12)
