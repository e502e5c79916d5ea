"""Live rules, bar by bar, fire exactly where the whole-series signals do."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api.strategies.rules import STRATEGY_KINDS, LiveSignal, make_live_rule, signals


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
