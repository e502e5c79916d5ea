"""How long a backtest takes, measured in-process on deterministic synthetic bars.

Run from the project root: ``.venv/bin/python -m bench.backtest_speed``. Writes
``bench/results/backtest_speed.json``. Bars are built once, outside the timed
region: the figure is the cost of ``run_backtest`` itself (signals, fills,
equity curve, metrics), which is what a backtest request pays on top of
loading its bars.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from graphql_api.market import indicators
from graphql_api.strategies.backtest import Bars, run_backtest

COMMAND = ".venv/bin/python -m bench.backtest_speed"
RESULTS = Path(__file__).parent / "results" / "backtest_speed.json"
SEED = 20240101
STRATEGY = "SMA_CROSS"
PARAMS = {"fast": 10, "slow": 30}


def synthetic_bars(count: int, step: np.timedelta64, volatility: float, seed: int) -> Bars:
    """A seeded log-normal random walk on a 0.01 tick grid, opens gapping from the last close."""
    rng = np.random.default_rng(seed)
    closes = np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, volatility, count))), 2)
    previous = np.concatenate([[100.0], closes[:-1]])
    opens = np.round(previous * (1.0 + rng.normal(0.0, volatility / 4, count)), 2)
    spread = np.abs(rng.normal(0.0, volatility / 2, count)) * closes
    highs = np.round(np.maximum(opens, closes) + spread, 2)
    lows = np.round(np.maximum(np.minimum(opens, closes) - spread, 0.01), 2)
    times = np.datetime64("2020-01-01T00:00", "us") + step * np.arange(count)
    return Bars.from_arrays(times, opens, highs, lows, closes)


def timed(function: Callable[[], object], repeats: int) -> dict[str, float]:
    function()  # warm caches and lazy imports
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000.0)
    return {
        "repeats": repeats,
        "min_ms": round(min(samples), 3),
        "median_ms": round(statistics.median(samples), 3),
    }


def backtest_case(name: str, bars: Bars, periods_per_year: float, repeats: int) -> dict[str, Any]:
    def run() -> Any:
        return run_backtest(
            bars,
            STRATEGY,
            PARAMS,
            initial_cash=Decimal(100_000),
            commission_rate=Decimal("0.0005"),
            lot_size=Decimal(1),
            periods_per_year=periods_per_year,
        )

    result = run()
    return {
        "name": name,
        "bars": len(bars),
        "strategy": STRATEGY,
        "params": PARAMS,
        "trades": result.trade_count,
        "final_equity": str(result.final_equity),
        **timed(run, repeats),
    }


def indicator_cases(bars: Bars, repeats: int) -> list[dict[str, Any]]:
    close, high, low = bars.close, bars.high, bars.low
    functions: dict[str, Callable[[], object]] = {
        "sma(30)": lambda: indicators.sma(close, 30),
        "ema(30)": lambda: indicators.ema(close, 30),
        "rsi(14)": lambda: indicators.rsi(close, 14),
        "macd(12,26,9)": lambda: indicators.macd(close),
        "bollinger(20,2)": lambda: indicators.bollinger(close),
        "atr(14)": lambda: indicators.atr(high, low, close),
    }
    return [
        {"name": name, "points": len(bars), **timed(function, repeats)}
        for name, function in functions.items()
    ]


def main() -> None:
    daily = synthetic_bars(2_000, np.timedelta64(1, "D"), 0.015, SEED)
    minute = synthetic_bars(60_000, np.timedelta64(1, "m"), 0.0008, SEED + 1)
    backtests = [
        backtest_case("daily_2000", daily, 252.0, repeats=50),
        backtest_case("minute_60000", minute, 252.0 * 240, repeats=15),
    ]
    indicator_timings = indicator_cases(minute, repeats=15)
    report = {
        "command": COMMAND,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
        "backtests": backtests,
        "indicators": indicator_timings,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for case in backtests:
        print(
            f"{case['name']:>14}: {case['bars']:>6} bars, {case['trades']:>5} trades, "
            f"min {case['min_ms']:.2f} ms, median {case['median_ms']:.2f} ms"
        )
    for case in indicator_timings:
        print(f"{case['name']:>16} x {case['points']}: min {case['min_ms']:.2f} ms")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
