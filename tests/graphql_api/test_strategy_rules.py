"""Strategy rules: parameter validation, whole-series signals, and live rules that match them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api.market.indicators import ema, macd
from graphql_api.strategies.rules import (
    PARAMETER_SPECS,
    STRATEGY_KINDS,
    InvalidParametersError,
    LiveSignal,
    ProblemCode,
    make_live_rule,
    signals,
    validate_parameters,
    warmup_bars,
)

# given / when / then, where the "when" is a single call, are folded into one line each.


def test_defaults_fill_missing_parameters() -> None:
    normalised, problems = validate_parameters("RSI_REVERSION", {"lower": 25})
    assert problems == []
    assert normalised == {"period": 14, "lower": 25.0, "upper": 70.0}
    assert isinstance(normalised["lower"], float)


def test_every_kind_validates_its_own_defaults() -> None:
    for kind in STRATEGY_KINDS:
        normalised, problems = validate_parameters(kind, {})
        assert problems == []
        assert normalised == {spec.name: spec.default for spec in PARAMETER_SPECS[kind]}


def test_unknown_kind() -> None:
    normalised, problems = validate_parameters("MOON_PHASE", {"fast": 1})
    assert normalised == {}
    assert [(p.field, p.code) for p in problems] == [("kind", ProblemCode.UNKNOWN_KIND)]


def test_ordering_problem_names_both_values() -> None:
    _, problems = validate_parameters("SMA_CROSS", {"fast": 20, "slow": 5})
    assert [(p.field, p.code, p.message) for p in problems] == [
        ("parameters.fast", "INVALID_COMBINATION", "fast (20) must be less than slow (5)")
    ]


def test_every_problem_is_reported_at_once() -> None:
    _, problems = validate_parameters(
        "MACD_CROSS", {"fast": True, "slow": 26.0, "signal": 0, "speed": 3}
    )
    assert {(p.field, p.code) for p in problems} == {
        ("parameters.speed", ProblemCode.UNKNOWN_PARAMETER),
        ("parameters.fast", ProblemCode.INVALID_TYPE),  # booleans are not integers
        ("parameters.slow", ProblemCode.INVALID_TYPE),  # 26.0 is not an integer
        ("parameters.signal", ProblemCode.OUT_OF_RANGE),
    }


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"stddev": "2"}, ProblemCode.INVALID_TYPE),
        ({"stddev": math.nan}, ProblemCode.INVALID_TYPE),
        ({"stddev": 10**400}, ProblemCode.INVALID_TYPE),
        ({"stddev": 0.0}, ProblemCode.OUT_OF_RANGE),
        ({"period": 1}, ProblemCode.OUT_OF_RANGE),
    ],
)
def test_bad_values(params: dict[str, object], code: ProblemCode) -> None:
    _, problems = validate_parameters("BOLLINGER_BREAKOUT", params)
    assert [p.code for p in problems] == [code]


def test_problem_codes_compare_equal_to_their_names() -> None:
    # The strategy service maps codes by their string value.
    assert ProblemCode.OUT_OF_RANGE == "OUT_OF_RANGE"


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


def test_live_rule_explains_its_signals() -> None:
    rule = make_live_rule("SMA_CROSS", {"fast": 1, "slow": 3})
    emitted = [rule.on_bar(c) for c in [10.0, 10.0, 10.0, 9.0, 8.0, 12.0, 13.0, 7.0]]
    assert emitted[5] == LiveSignal("BUY", "SMA(1) crossed above SMA(3)")
    assert emitted[7] == LiveSignal("SELL", "SMA(1) crossed below SMA(3)")


def _replay(kind: str, params: dict[str, object], closes: np.ndarray) -> list[int]:
    rule = make_live_rule(kind, params)
    out = []
    for close in closes.tolist():
        emitted = rule.on_bar(close, close * 1.01, close * 0.99)
        out.append(0 if emitted is None else (1 if emitted.side == "BUY" else -1))
    return out


kinds_with_params = st.one_of(
    st.tuples(st.integers(1, 20), st.integers(1, 30)).map(
        lambda p: ("SMA_CROSS", {"fast": p[0], "slow": p[0] + p[1]})
    ),
    st.tuples(st.integers(1, 20), st.integers(1, 30)).map(
        lambda p: ("EMA_CROSS", {"fast": p[0], "slow": p[0] + p[1]})
    ),
    st.tuples(st.integers(2, 20), st.integers(5, 45), st.integers(5, 45)).map(
        lambda p: ("RSI_REVERSION", {"period": p[0], "lower": p[1], "upper": 100 - p[2]})
    ),
    st.tuples(st.integers(2, 12), st.integers(1, 14), st.integers(1, 9)).map(
        lambda p: ("MACD_CROSS", {"fast": p[0], "slow": p[0] + p[1], "signal": p[2]})
    ),
    st.tuples(st.integers(2, 30), st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5])).map(
        lambda p: ("BOLLINGER_BREAKOUT", {"period": p[0], "stddev": p[1]})
    ),
)

# Prices on a 0.01 tick grid, as exchanges quote them, with flat stretches.
tick_walks = st.builds(
    lambda start, moves: np.round((start + np.cumsum([0, *moves])) * 0.01, 2),
    st.integers(500, 100_000),
    st.lists(st.integers(-40, 40) | st.just(0), min_size=0, max_size=300),
).filter(lambda closes: bool((closes > 0).all()))


@settings(max_examples=150, deadline=None)
@given(kinds_with_params, tick_walks)
def test_live_rules_fire_exactly_where_the_vectorised_rules_do(
    kind_and_params: tuple[str, dict[str, object]], closes: np.ndarray
) -> None:
    kind, params = kind_and_params
    assert _replay(kind, params, closes) == signals(kind, params, closes).tolist()


@pytest.mark.parametrize("kind", STRATEGY_KINDS)
def test_live_and_vectorised_agree_on_a_long_series_with_defaults(kind: str) -> None:
    rng = np.random.default_rng(11)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 5_000))), 2)
    vectorised = signals(kind, {}, closes)
    assert _replay(kind, {}, closes) == vectorised.tolist()
    assert np.count_nonzero(vectorised) > 5


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
