"""What a strategy restart costs when it replays 100,000 bars from ``evaluated_from``.

A ``MACD_CROSS`` strategy on ``1m`` bars of BTCUSDT has evaluated 100,000
bars (one tick each, a random walk, in the embedded SQLite store) since it
went live. A new :class:`~graphql_api.strategies.engine.runner.StrategyRunner`
starts from its row, as an engine does after a restart or failover: it reads
the bars from the store and replays every one of them into the rule. Reported:
the whole ``start()``, the read and the replay apart, and the longest time the
event loop ran nothing else meanwhile (another task yields in a loop and
records its gaps), for the read and for the replay, and the longest pass of the
garbage collector meanwhile (a stall as long as it is the collector's, not ours).

    PYTHONPATH=. .venv/bin/python -m bench.strategy_restart

Writes bench/results/strategy_restart.json.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import update

from graphql_api.server.runtime import open_services
from graphql_api.strategies.definitions import StrategyDraft, StrategyKind
from graphql_api.strategies.engine.runner import RunningStrategy, StrategyRunner
from graphql_api.strategies.lifecycle import start_strategy
from storage import models
from storage.timeseries import Bar, KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval
from tests.conftest import make_settings

RESULTS = Path(__file__).parent / "results" / "strategy_restart.json"
BARS = 100_000
SYMBOL = "BTCUSDT"


def walk(start: datetime) -> list[Tick]:
    rng = random.Random(1)
    price, ticks = 95_000.0, []
    for minute in range(BARS):
        price *= 1 + rng.gauss(0, 0.0005)
        last = Decimal(f"{price:.2f}")
        moment = start + timedelta(minutes=minute, seconds=30)
        ticks.append(Tick(SYMBOL, moment, last, last, last, Decimal("0.01")))
    return ticks


class LoopWatch:
    """Records how long the event loop went between two turns of a yielding task."""

    def __init__(self) -> None:
        self.gaps: list[tuple[float, float]] = []  # (gap, when it ended)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            self.gaps.append((now - last, now))
            last = now

    def longest(self, start: float, end: float) -> float:
        return max((gap for gap, at in self.gaps if start <= at <= end), default=0.0)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class CollectionWatch:
    """Records the garbage collector's passes (duration, when it ended): a stall the
    loop watch sees may be the collector walking the heap, not our code."""

    def __init__(self) -> None:
        self.passes: list[tuple[float, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
        else:
            self.passes.append((now - self._started, now))

    def longest(self, start: float, end: float) -> float:
        return max((took for took, at in self.passes if start <= at <= end), default=0.0)

    def stop(self) -> None:
        gc.callbacks.remove(self._note)


class TimedRunner(StrategyRunner):
    """Notes when the replay starts and ends."""

    replay_started = replay_ended = 0.0

    async def _replay(self, bars: list[Bar]) -> None:
        self.replay_started = time.perf_counter()
        await super()._replay(bars)
        self.replay_ended = time.perf_counter()


async def measure(directory: str) -> dict[str, object]:
    settings = make_settings(
        f"sqlite+aiosqlite:///{directory}/bench.sqlite",
        STRATEGY_ENGINE_ENABLED="false",
        MATCHER_ENABLED="false",
        ALERT_ENGINE_ENABLED="false",
        EQUITY_SNAPSHOTS_ENABLED="false",
        WEBHOOKS_ENABLED="false",
    )
    async with open_services(settings) as services:
        last = floor_to_interval(datetime.now(UTC), KlineInterval.MINUTE_1) - timedelta(minutes=1)
        first = last - timedelta(minutes=BARS - 1)
        ticks = walk(first)
        for index in range(0, len(ticks), 10_000):
            await services.timeseries.write_ticks(ticks[index : index + 10_000])
        created = await services.strategies.create(
            services.demo_user_id,
            StrategyDraft(
                name="restart",
                kind=StrategyKind.MACD_CROSS,
                symbol=SYMBOL,
                interval=KlineInterval.MINUTE_1,
                parameters={},
            ),
        )
        assert created.strategy is not None, created.errors
        strategy_id = created.strategy.id
        await start_strategy(services.sessions, services.outbox, services.demo_user_id, strategy_id)
        async with services.sessions() as session:
            # as if it went live at the first bar and has evaluated every one since
            await session.execute(
                update(models.Strategy)
                .where(models.Strategy.id == strategy_id)
                .values(last_bar_at=last, evaluated_from=first)
            )
            await session.commit()
            row = await session.get(models.Strategy, strategy_id)
        assert row is not None
        runner = TimedRunner(
            RunningStrategy.from_row(row),
            sessions=services.sessions,
            timeseries=services.timeseries,
            catalog=services.catalog,
            outbox=services.outbox,
            orders=services.orders,
            activity=services.activity,
        )
        watch = LoopWatch()
        collections = CollectionWatch()
        started = time.perf_counter()
        await runner.start(datetime.now(UTC))
        ended = time.perf_counter()
        await watch.stop()
        collections.stop()
        assert runner.replayed == BARS, runner.replayed
        return {
            "bars_replayed": runner.replayed,
            "start_seconds": round(ended - started, 3),
            "read_seconds": round(runner.replay_started - started, 3),
            "replay_seconds": round(runner.replay_ended - runner.replay_started, 3),
            "replay_us_per_bar": round(
                (runner.replay_ended - runner.replay_started) / BARS * 1e6, 2
            ),
            "longest_loop_stall_ms": {
                "read": round(watch.longest(started, runner.replay_started) * 1000, 1),
                "replay": round(
                    watch.longest(runner.replay_started, runner.replay_ended) * 1000, 1
                ),
            },
            "longest_garbage_collection_ms": round(collections.longest(started, ended) * 1000, 1),
        }


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        result = asyncio.run(measure(directory))
    report = {
        "benchmark": "strategy_restart",
        "store": "sqlite",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "result": result,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
