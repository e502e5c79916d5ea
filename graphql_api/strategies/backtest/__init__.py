"""Vectorised backtests of the strategy kinds, with exact Decimal accounting.

The fill model is documented in :mod:`graphql_api.strategies.backtest.engine` and in
``docs/indicators.md``.
"""

from graphql_api.strategies.backtest.bars import Bars
from graphql_api.strategies.backtest.engine import (
    COMMISSION_QUANTUM,
    BacktestResult,
    Trade,
    run_backtest,
)

__all__ = ["COMMISSION_QUANTUM", "BacktestResult", "Bars", "Trade", "run_backtest"]
