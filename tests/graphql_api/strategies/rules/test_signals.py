"""Whole-series signals of every strategy kind, on hand-checked series and textbook crossings."""

from __future__ import annotations

import numpy as np
import pytest

from graphql_api.market.indicators import ema, macd
from graphql_api.strategies.rules import (
    STRATEGY_KINDS,
    InvalidParametersError,
    make_live_rule,
    signals,
    warmup_bars,
)


def test_sma_cross_on_a_hand_checked_series() -> None:
    closes = [10.0, 10.0, 10.0, 9.0, 8.0, 12.0, 13.0, 7.0]
    # SMA(1) is the close; SMA(3) from bar 2: 10, 29/3, 9, 29/3, 11, 32/3.
    # Close vs SMA(3): equal, below, below, above, above, below.
    # Bar 3 leaves "equal" downwards (a cross below), bar 5 crosses above, bar 7 below.
    result = signals("SMA_CROSS", {"fast": 1, "slow": 3}, closes)
    assert result.dtype == np.int8
    assert result.tolist() == [0, 0, 0, -1, 0, 1, 0, -1]


def test_rsi_reversion_on_a_hand_checked_series() -> None:
    closes = [10.0, 9.0, 8.0, 9.0, 11.0, 12.0, 11.0, 10.0]
    # RSI(2): bar 2 seeds gain 0, loss 1 -> 0; bar 3 (+1): 0.5/0.5 -> 50, back above 30: buy;
    # bar 4 (+2): 1.25/0.25 -> 83.3; bar 5 (+1): 1.125/0.125 -> 90;
    # bar 6 (-1): 0.5625/0.5625 -> 50, back below 70: sell; bar 7 (-1): 26.5, no new cross.
    result = signals("RSI_REVERSION", {"period": 2, "lower": 30, "upper": 70}, closes)
    assert result.tolist() == [0, 0, 0, 1, 0, 0, -1, 0]


def test_bollinger_breakout_on_a_hand_checked_series() -> None:
    closes = [10.0, 10.0, 10.0, 13.0, 12.0, 9.0]
    # period 3, 1 sd: bar 2 bands collapse onto 10; bar 3 upper = 11 + sqrt(2) < 13: buy;
    # bar 4 middle 35/3 < 12, upper above 12: nothing; bar 5 middle 34/3 > 9: sell.
    result = signals("BOLLINGER_BREAKOUT", {"period": 3, "stddev": 1.0}, closes)
    assert result.tolist() == [0, 0, 0, 1, 0, -1]


def _strict_crossings(a: np.ndarray, b: np.ndarray) -> list[int]:
    """The textbook definition, for series without near-ties."""
    out = [0] * a.size
    for t in range(1, a.size):
        if np.isnan([a[t], b[t], a[t - 1], b[t - 1]]).any():
            continue
        if a[t] > b[t] and a[t - 1] <= b[t - 1]:
            out[t] = 1
        elif a[t] < b[t] and a[t - 1] >= b[t - 1]:
            out[t] = -1
    return out


def test_ema_and_macd_crosses_follow_the_textbook_definition() -> None:
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3_000)))
    ema_signals = signals("EMA_CROSS", {"fast": 5, "slow": 20}, closes)
    assert ema_signals.tolist() == _strict_crossings(ema(closes, 5), ema(closes, 20))
    lines = macd(closes, 12, 26, 9)
    macd_signals = signals("MACD_CROSS", {}, closes)
    assert macd_signals.tolist() == _strict_crossings(lines.macd, lines.signal)
    assert np.count_nonzero(macd_signals) > 10  # the comparison above was not vacuous


def test_flat_prices_never_signal() -> None:
    # On a flat market every average equals the price in exact arithmetic; rounding noise
    # in the last bits must not be read as crossings.
    closes = np.full(300, 123.45)
    for kind in STRATEGY_KINDS:
        assert not signals(kind, {}, closes).any(), kind


def test_invalid_parameters_raise_from_the_rule_entry_points() -> None:
    with pytest.raises(InvalidParametersError, match=r"fast \(30\) must be less than slow"):
        signals("SMA_CROSS", {"fast": 30, "slow": 10}, [1.0, 2.0])
    with pytest.raises(InvalidParametersError):
        make_live_rule("NOPE", {})


@pytest.mark.parametrize("kind", STRATEGY_KINDS)
def test_no_signal_before_the_warm_up_is_over(kind: str) -> None:
    rng = np.random.default_rng(5)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 2_000)))
    result = signals(kind, {}, closes)
    warmup = warmup_bars(kind, {})
    assert not result[:warmup].any()
    # ... and the warm-up is not overstated: a series whose history is cut to
    # exactly the warm-up still signals on the same later bars.
    first = int(np.flatnonzero(result)[0])
    assert signals(kind, {}, closes[: first + 1])[first] == result[first]
