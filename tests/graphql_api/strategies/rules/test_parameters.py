"""Strategy parameters: defaults, types, ranges and combinations, every problem reported at once."""

from __future__ import annotations

import math

import pytest

from graphql_api.strategies.rules import (
    PARAMETER_SPECS,
    STRATEGY_KINDS,
    ProblemCode,
    validate_parameters,
)


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
