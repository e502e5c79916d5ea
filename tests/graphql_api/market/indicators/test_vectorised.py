"""Vectorised indicators against published worked examples and hand arithmetic.

Expected values are written out as the arithmetic a person would do on
paper, never produced by the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api.market.indicators import atr, bollinger, ema, macd, rsi, sma

NAN = math.nan

# Wilder's RSI example as reproduced in StockCharts' ChartSchool article.
WILDER_CLOSES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08,
    45.89, 46.03, 45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64,
]  # fmt: skip

# StockCharts' 10-day EMA spreadsheet (ChartSchool, "Moving Averages").
STOCKCHARTS_EMA_CLOSES = [
    22.27, 22.19, 22.08, 22.17, 22.18, 22.13, 22.23, 22.43, 22.24, 22.29,
    22.15, 22.39, 22.38, 22.61, 23.36, 24.05, 23.75, 23.83, 23.95, 23.63,
    23.82, 23.87, 23.65, 23.19, 23.10, 23.33, 22.68, 23.10, 22.40, 22.17,
]  # fmt: skip


def assert_series(actual: np.ndarray, expected: list[float], rel: float = 1e-12) -> None:
    assert actual.shape == (len(expected),)
    for index, (got, want) in enumerate(zip(actual.tolist(), expected, strict=True)):
        if math.isnan(want):
            assert math.isnan(got), f"index {index}: expected warm-up NaN, got {got}"
        else:
            assert got == pytest.approx(want, rel=rel, abs=1e-12), f"index {index}"


def test_sma_of_a_ramp() -> None:
    assert_series(sma([1.0, 2.0, 3.0, 4.0, 5.0], 3), [NAN, NAN, 2.0, 3.0, 4.0])


def test_sma_period_one_is_the_series() -> None:
    assert_series(sma([3.0, 1.0, 2.0], 1), [3.0, 1.0, 2.0])


def test_ema_is_seeded_with_the_sma_and_smoothed_with_two_over_n_plus_one() -> None:
    # EMA(3), k = 0.5: seed (2 + 4 + 6) / 3 = 4; then 4 + 0.5*(10 - 4) = 7; 7 + 0.5*(1 - 7) = 4
    assert_series(ema([2.0, 4.0, 6.0, 10.0, 1.0], 3), [NAN, NAN, 4.0, 7.0, 4.0])


def test_ema_matches_the_stockcharts_10_day_example() -> None:
    result = ema(STOCKCHARTS_EMA_CLOSES, 10)

    assert np.isnan(result[:9]).all()
    # The published column starts 22.22, 22.21, 22.24; by hand:
    seed = 222.21 / 10  # sum of the first ten closes
    second = seed + (22.15 - seed) * 2 / 11
    third = second + (22.39 - second) * 2 / 11
    assert result[9] == pytest.approx(seed, rel=1e-12)
    assert result[10] == pytest.approx(second, rel=1e-12)
    assert result[11] == pytest.approx(third, rel=1e-12)
    assert [round(value, 2) for value in result[9:12]] == [22.22, 22.21, 22.24]


def test_rsi_matches_wilders_worked_example() -> None:
    result = rsi(WILDER_CLOSES, 14)

    assert np.isnan(result[:14]).all()
    # Changes over the first 14 bars: gains .06 .72 .50 .27 .32 .42 .24 .14 .67 = 3.34,
    # losses .25 .54 .19 .42 = 1.40.
    gain, loss = 3.34 / 14, 1.40 / 14
    assert result[14] == pytest.approx(100 * gain / (gain + loss), rel=1e-9)
    # Bar 15 falls 0.28: Wilder smoothing with 13/14 of the old averages.
    gain, loss = gain * 13 / 14, (loss * 13 + 0.28) / 14
    assert result[15] == pytest.approx(100 * gain / (gain + loss), rel=1e-9)
    # Bar 16 rises 0.03.
    gain, loss = (gain * 13 + 0.03) / 14, loss * 13 / 14
    assert result[16] == pytest.approx(100 * gain / (gain + loss), rel=1e-9)
    # StockCharts publishes 70.53, 66.32, 66.55, 69.41, 66.36, 57.97, computed
    # from averages rounded to two decimals, so they are ~0.07 off the exact values.
    published = [70.53, 66.32, 66.55, 69.41, 66.36, 57.97]
    assert np.abs(result[14:20] - published).max() < 0.1


def test_rsi_extremes_and_a_flat_market() -> None:
    rising = [float(x) for x in range(1, 11)]
    assert rsi(rising, 3)[-1] == 100.0
    assert rsi(rising[::-1], 3)[-1] == 0.0
    # No movement at all: neutral 50 (TA-Lib would say 0).
    assert_series(rsi([5.0] * 6, 3), [NAN, NAN, NAN, 50.0, 50.0, 50.0])


def test_bollinger_uses_the_population_standard_deviation() -> None:
    bands = bollinger([1.0, 2.0, 3.0, 4.0, 5.0], 5, 2.0)
    # mean 3; squared deviations 4 + 1 + 0 + 1 + 4 = 10; population variance 10 / 5 = 2
    assert_series(bands.middle, [NAN, NAN, NAN, NAN, 3.0])
    assert_series(bands.upper, [NAN, NAN, NAN, NAN, 3.0 + 2 * math.sqrt(2.0)])
    assert_series(bands.lower, [NAN, NAN, NAN, NAN, 3.0 - 2 * math.sqrt(2.0)])


def test_bollinger_rolls_its_window() -> None:
    bands = bollinger([10.0, 10.0, 10.0, 13.0], 3, 1.0)
    # windows: [10, 10, 10] -> mean 10, sd 0; [10, 10, 13] -> mean 11, variance (1 + 1 + 4) / 3
    assert_series(bands.middle, [NAN, NAN, 10.0, 11.0])
    assert_series(bands.upper, [NAN, NAN, 10.0, 11.0 + math.sqrt(2.0)])
    assert_series(bands.lower, [NAN, NAN, 10.0, 11.0 - math.sqrt(2.0)])


def test_atr_ignores_the_first_true_range_and_smooths_wilder_style() -> None:
    high = [10.0, 11.0, 13.0, 12.5, 10.0]
    low = [8.0, 9.0, 10.0, 11.0, 9.0]
    close = [9.0, 10.0, 12.0, 11.5, 9.5]
    # TR1 = max(11-9, |11-9|, |9-9|) = 2;  TR2 = max(13-10, |13-10|, |10-10|) = 3
    # TR3 = max(12.5-11, |12.5-12|, |11-12|) = 1.5
    # TR4 (gap down) = max(10-9, |10-11.5|, |9-11.5|) = 2.5
    # ATR(2): (2 + 3) / 2 = 2.5;  (2.5 + 1.5) / 2 = 2.0;  (2.0 + 2.5) / 2 = 2.25
    assert_series(atr(high, low, close, 2), [NAN, NAN, 2.5, 2.0, 2.25])


def test_macd_seeds_both_emas_where_the_slow_one_starts() -> None:
    closes = [5.0, 4.0, 6.0, 3.0, 9.0, 6.0]
    result = macd(closes, fast=2, slow=3, signal=2)
    # slow EMA(3), k = 1/2:  seed (5+4+6)/3 = 5;  4;  6.5;  6.25
    # fast EMA(2), k = 2/3, seeded at index 2 (TA-Lib) with (4+6)/2 = 5:  11/3;  65/9;  173/27
    # MACD = fast - slow:  0;  -1/3;  13/18;  17/108
    # signal EMA(2) of MACD, seeded with (0 - 1/3)/2 = -1/6:  23/54;  20/81
    assert_series(result.macd, [NAN, NAN, 0.0, -1 / 3, 13 / 18, 17 / 108])
    assert_series(result.signal, [NAN, NAN, NAN, -1 / 6, 23 / 54, 20 / 81])
    assert_series(result.histogram, [NAN, NAN, NAN, -1 / 6, 8 / 27, -29 / 324])
    # A fast EMA seeded at index 1 instead would give 5.5 at index 2, not 5.
    assert ema(closes, 2)[2] == pytest.approx(5.5)


def test_default_warm_up_lengths() -> None:
    closes = 100.0 + np.sin(np.arange(80) / 3.0)
    assert np.isnan(sma(closes, 20)).sum() == 19
    assert np.isnan(ema(closes, 20)).sum() == 19
    assert np.isnan(rsi(closes)).sum() == 14
    assert np.isnan(atr(closes + 1, closes - 1, closes)).sum() == 14
    result = macd(closes)
    assert np.isnan(result.macd).sum() == 25
    assert np.isnan(result.signal).sum() == 33
    assert np.isnan(result.histogram).sum() == 33
    assert np.isnan(bollinger(closes).upper).sum() == 19


def test_series_shorter_than_the_warm_up_are_all_nan() -> None:
    closes = [1.0, 2.0, 3.0]
    for result in (sma(closes, 5), ema(closes, 5), rsi(closes, 3), macd(closes).signal):
        assert result.shape == (3,)
        assert np.isnan(result).all()
    assert np.isnan(atr(closes, closes, closes, 3)).all()
    assert sma([], 3).shape == (0,)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="period"):
        sma([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="period"):
        ema([1.0, 2.0], True)
    with pytest.raises(ValueError, match="finite"):
        rsi([1.0, math.nan, 2.0])
    with pytest.raises(ValueError, match="less than slow"):
        macd([1.0] * 40, fast=26, slow=12)
    with pytest.raises(ValueError, match="same length"):
        atr([1.0, 2.0], [1.0], [1.0, 2.0])


def _reference_ema(values: list[float], period: int) -> list[float]:
    """A plain loop of TA-Lib's recursion, as the oracle for the blocked kernel."""
    value = math.fsum(values[:period]) / period
    out = [NAN] * (period - 1) + [value]
    k = 2 / (period + 1)
    for x in values[period:]:
        value = (x - value) * k + value
        out.append(value)
    return out


def test_ema_over_many_smoothing_blocks_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(7)
    closes = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, 5_000)))).tolist()
    for period in (1, 2, 14, 200):
        assert_series(ema(closes, period), _reference_ema(closes, period), rel=1e-11)


walks = st.builds(
    lambda start, steps: np.cumprod([start, *(1 + s / 1000 for s in steps)]),
    st.floats(1.0, 10_000.0),
    st.lists(st.integers(-50, 50), min_size=0, max_size=400),
)


@settings(max_examples=60, deadline=None)
@given(walks, st.integers(1, 60))
def test_sma_equals_each_windows_exact_mean(closes: np.ndarray, period: int) -> None:
    result = sma(closes, period)
    for end in range(period - 1, closes.size):
        window = closes[end - period + 1 : end + 1].tolist()
        assert result[end] == pytest.approx(math.fsum(window) / period, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(walks, st.integers(1, 40))
def test_rsi_stays_within_0_and_100(closes: np.ndarray, period: int) -> None:
    values = rsi(closes, period)
    defined = values[~np.isnan(values)]
    assert ((defined >= 0.0) & (defined <= 100.0)).all()


@settings(max_examples=60, deadline=None)
@given(walks, st.integers(1, 40), st.floats(0.0, 4.0))
def test_bollinger_middle_is_the_sma_and_bands_are_symmetric(
    closes: np.ndarray, period: int, width: float
) -> None:
    bands = bollinger(closes, period, width)
    np.testing.assert_array_equal(bands.middle, sma(closes, period))
    defined = ~np.isnan(bands.middle)
    assert (bands.upper[defined] >= bands.middle[defined]).all()
    # Both differences are the band width up to one rounding of the middle band.
    np.testing.assert_allclose(
        (bands.upper - bands.middle)[defined],
        (bands.middle - bands.lower)[defined],
        rtol=0,
        atol=1e-12 * closes.max(),
    )
