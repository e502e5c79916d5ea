"""The live strategy engine: closed bars from ticks, one runner per running strategy.

- :mod:`.bars` folds ticks into closed bars of an interval;
- :mod:`.runner` drives one strategy's rule on those bars, storing and
  publishing its signals (and placing its orders with ``auto_trade``);
- :mod:`.engine` runs every RUNNING strategy, once per cluster.

See ``docs/strategies.md``.
"""

from graphql_api.strategies.engine.bars import BarBuilder
from graphql_api.strategies.engine.engine import StrategyEngine
from graphql_api.strategies.engine.runner import (
    RunningStrategy,
    StrategyConfigError,
    StrategyRunner,
)

__all__ = [
    "BarBuilder",
    "RunningStrategy",
    "StrategyConfigError",
    "StrategyEngine",
    "StrategyRunner",
]
