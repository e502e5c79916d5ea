"""The strategy kinds as pure signal rules: parameters, whole-series signals, live rules.

No I/O and no GraphQL: the strategy service validates with
:func:`validate_parameters`, backtests call :func:`signals`, and the live
strategy engine drives :func:`make_live_rule` bar by bar.
"""

from graphql_api.strategies.rules.crossing import TIE_TOLERANCE
from graphql_api.strategies.rules.live import LiveRule, LiveSignal, make_live_rule
from graphql_api.strategies.rules.parameters import (
    PARAMETER_SPECS,
    STRATEGY_KINDS,
    InvalidParametersError,
    ParameterProblem,
    ParameterSpec,
    ProblemCode,
    validate_parameters,
)
from graphql_api.strategies.rules.signals import BUY, SELL, signals, warmup_bars

__all__ = [
    "BUY",
    "PARAMETER_SPECS",
    "SELL",
    "STRATEGY_KINDS",
    "TIE_TOLERANCE",
    "InvalidParametersError",
    "LiveRule",
    "LiveSignal",
    "ParameterProblem",
    "ParameterSpec",
    "ProblemCode",
    "make_live_rule",
    "signals",
    "validate_parameters",
    "warmup_bars",
]
