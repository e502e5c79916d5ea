"""Strategy kinds, their parameters, and the checks a strategy's parameters must pass.

Validation reports every problem at once, as data, so a mutation can return
all of them as ``userErrors`` (``field`` is the dotted path into the input).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "PARAMETER_SPECS",
    "STRATEGY_KINDS",
    "InvalidParametersError",
    "ParameterProblem",
    "ParameterSpec",
    "ProblemCode",
    "require_valid_parameters",
    "validate_parameters",
]

Number = int | float


class ProblemCode(enum.StrEnum):
    UNKNOWN_KIND = "UNKNOWN_KIND"
    UNKNOWN_PARAMETER = "UNKNOWN_PARAMETER"
    INVALID_TYPE = "INVALID_TYPE"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    INVALID_COMBINATION = "INVALID_COMBINATION"


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    """One tunable parameter of a strategy kind.

    ``type`` is ``"int"`` (periods, in bars) or ``"float"``; ``minimum`` and
    ``maximum`` are inclusive.
    """

    name: str
    type: Literal["int", "float"]
    default: Number
    minimum: Number
    maximum: Number
    description: str


@dataclass(frozen=True, slots=True)
class ParameterProblem:
    field: str
    code: ProblemCode
    message: str


class InvalidParametersError(ValueError):
    """Raised by the rule and backtest entry points, which expect validated input."""

    def __init__(self, problems: list[ParameterProblem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems


def _period(name: str, default: int, minimum: int, maximum: int, what: str) -> ParameterSpec:
    return ParameterSpec(name, "int", default, minimum, maximum, what)


def _level(name: str, default: float, what: str) -> ParameterSpec:
    return ParameterSpec(name, "float", default, 0.0, 100.0, what)


PARAMETER_SPECS: Mapping[str, tuple[ParameterSpec, ...]] = MappingProxyType(
    {
        "SMA_CROSS": (
            _period("fast", 10, 1, 1000, "Bars in the fast simple moving average."),
            _period("slow", 30, 2, 1000, "Bars in the slow simple moving average."),
        ),
        "EMA_CROSS": (
            _period("fast", 12, 1, 1000, "Bars in the fast exponential moving average."),
            _period("slow", 26, 2, 1000, "Bars in the slow exponential moving average."),
        ),
        "RSI_REVERSION": (
            _period("period", 14, 2, 500, "Bars in Wilder's RSI."),
            ParameterSpec(
                "lower",
                "float",
                30.0,
                0.0,
                100.0,
                "Oversold level: buy when RSI climbs back above it.",
            ),
            ParameterSpec(
                "upper",
                "float",
                70.0,
                0.0,
                100.0,
                "Overbought level: sell when RSI falls back below it.",
            ),
        ),
        "MACD_CROSS": (
            _period("fast", 12, 2, 500, "Bars in the fast EMA of the MACD line."),
            _period("slow", 26, 2, 1000, "Bars in the slow EMA of the MACD line."),
            _period("signal", 9, 1, 500, "Bars in the EMA of the MACD line (the signal line)."),
        ),
        "BOLLINGER_BREAKOUT": (
            _period("period", 20, 2, 1000, "Bars in the middle band (an SMA)."),
            ParameterSpec(
                "stddev", "float", 2.0, 0.1, 10.0, "Band width in population standard deviations."
            ),
        ),
    }
)

STRATEGY_KINDS: tuple[str, ...] = tuple(PARAMETER_SPECS)

# (smaller, larger) pairs that must be strictly ordered, per kind.
_ORDERED_PAIRS: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "SMA_CROSS": (("fast", "slow"),),
        "EMA_CROSS": (("fast", "slow"),),
        "RSI_REVERSION": (("lower", "upper"),),
        "MACD_CROSS": (("fast", "slow"),),
    }
)


def validate_parameters(
    kind: str, params: Mapping[str, object]
) -> tuple[dict[str, Number], list[ParameterProblem]]:
    """Normalise ``params`` for ``kind`` (defaults filled, floats as float) or list what is wrong.

    Returns ``(normalised, [])`` or ``({}, problems)``. Booleans are not
    numbers here, and an ``int`` parameter given as ``10.0`` is rejected
    rather than silently truncated or accepted: a period is a count of bars.
    """
    specs = PARAMETER_SPECS.get(kind)
    if specs is None:
        expected = ", ".join(STRATEGY_KINDS)
        message = f"unknown strategy kind {kind!r}; expected one of {expected}"
        return {}, [ParameterProblem("kind", ProblemCode.UNKNOWN_KIND, message)]

    problems: list[ParameterProblem] = []
    known = {spec.name for spec in specs}
    for name in params:
        if name not in known:
            allowed = ", ".join(spec.name for spec in specs)
            message = f"{kind} has no parameter {name!r}; its parameters are {allowed}"
            problems.append(
                ParameterProblem(f"parameters.{name}", ProblemCode.UNKNOWN_PARAMETER, message)
            )

    normalised: dict[str, Number] = {}
    for spec in specs:
        value, problem = _check(spec, params.get(spec.name, spec.default))
        if problem is not None:
            problems.append(problem)
        else:
            normalised[spec.name] = value

    for smaller, larger in _ORDERED_PAIRS.get(kind, ()):
        if smaller in normalised and larger in normalised:
            low, high = normalised[smaller], normalised[larger]
            if not low < high:
                message = f"{smaller} ({low:g}) must be less than {larger} ({high:g})"
                problems.append(
                    ParameterProblem(
                        f"parameters.{smaller}", ProblemCode.INVALID_COMBINATION, message
                    )
                )

    if problems:
        return {}, problems
    return normalised, []


def require_valid_parameters(kind: str, params: Mapping[str, object]) -> dict[str, Number]:
    normalised, problems = validate_parameters(kind, params)
    if problems:
        raise InvalidParametersError(problems)
    return normalised


def _check(spec: ParameterSpec, value: object) -> tuple[Number, ParameterProblem | None]:
    field = f"parameters.{spec.name}"
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            message = f"{spec.name} must be an integer, got {value!r}"
            return 0, ParameterProblem(field, ProblemCode.INVALID_TYPE, message)
        number: Number = value
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            message = f"{spec.name} must be a number, got {value!r}"
            return 0, ParameterProblem(field, ProblemCode.INVALID_TYPE, message)
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            number = math.inf
        if not math.isfinite(number):
            message = f"{spec.name} must be a finite number, got {value!r}"
            return 0, ParameterProblem(field, ProblemCode.INVALID_TYPE, message)
    if not spec.minimum <= number <= spec.maximum:
        message = f"{spec.name} ({number:g}) must be between {spec.minimum:g} and {spec.maximum:g}"
        return 0, ParameterProblem(field, ProblemCode.OUT_OF_RANGE, message)
    return number, None
