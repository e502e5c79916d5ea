"""The live strategy engine: one per cluster, runs every RUNNING strategy.

Run :meth:`StrategyEngine.run` under ``Leadership(engine, "strategy-engine")``
so exactly one process evaluates strategies at a time; the unique
``(strategy_id, bar_time)`` constraint on signals and the forward-only
``last_bar_at`` keep a leader that lost its lock mid-bar from emitting twice.

Which strategies run is read from the ``strategies`` table: every
``poll_interval`` seconds, and at once when ``startStrategy``/``stopStrategy``
(or anything else) publishes on
:data:`~graphql_api.realtime.channels.CONTROL_CHANNEL`. Polling is the source
of truth — a lost control message only delays a change by one poll — and it
also notices strategies started on another process or edited while running
(a changed ``updated_at`` rebuilds the runner).

One worker per symbol subscribes to that symbol's tick channel, lossless
(``conflate=False``: a conflating mailbox would drop ticks, and with them
volume and highs/lows), and feeds the symbol's runners in arrival order. A
worker that falls behind (:class:`SlowConsumerError`) resubscribes and
rebuilds its runners from the store, which is safe because every evaluated
bar is recorded in ``last_bar_at`` (and where each rule's state began in
``evaluated_from``). A timer closes bars no later tick closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select, update

from graphql_api.market.symbols import SymbolCatalog
from graphql_api.platform.activity import Activity
from graphql_api.realtime.channels import CONTROL_CHANNEL, tick_channel
from graphql_api.realtime.events import decode_tick
from graphql_api.realtime.hub import Hub, Mailbox, SlowConsumerError
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.strategies.definitions import StrategyStatus
from graphql_api.strategies.engine.bars import DEFAULT_GRACE
from graphql_api.strategies.engine.runner import (
    MAX_REPLAY_BARS,
    RunningStrategy,
    StrategyConfigError,
    StrategyRunner,
)
from graphql_api.trading.orders import OrderService
from storage import models
from storage.engine import SessionFactory
from storage.timeseries import TimeSeriesStore

__all__ = ["StrategyEngine"]

log = structlog.get_logger(__name__)

WORKER_MAILBOX = 10_000
RETRY_DELAY = 1.0


class StrategyEngine:
    """Parameters:
    sessions: the database (which strategies run; their rows).
    hub: the tick channels and the control channel.
    timeseries, catalog, outbox, orders, activity: for the runners
        (see :class:`~graphql_api.strategies.engine.runner.StrategyRunner`).
    poll_interval: seconds between reads of the RUNNING strategies.
    timer_interval: seconds between timer checks that close quiet bars.
    grace: how long past a bucket's end (and its last tick) a bar waits for late ticks.
    mailbox_capacity: ticks a symbol worker may fall behind before it resyncs.
    max_replay_bars: see :class:`~graphql_api.strategies.engine.runner.StrategyRunner`.
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        hub: Hub,
        timeseries: TimeSeriesStore,
        catalog: SymbolCatalog,
        outbox: EventOutbox,
        orders: OrderService,
        activity: Activity,
        poll_interval: float = 1.0,
        timer_interval: float = 0.5,
        grace: timedelta = DEFAULT_GRACE,
        mailbox_capacity: int = WORKER_MAILBOX,
        max_replay_bars: int = MAX_REPLAY_BARS,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self._timeseries = timeseries
        self._catalog = catalog
        self._outbox = outbox
        self._orders = orders
        self._activity = activity
        self._poll_interval = poll_interval
        self.timer_interval = timer_interval
        self.grace = grace
        self.mailbox_capacity = mailbox_capacity
        self.max_replay_bars = max_replay_bars
        self._workers: dict[str, _SymbolWorker] = {}
        self._wake = asyncio.Event()

    def new_runner(self, strategy: RunningStrategy) -> StrategyRunner:
        """A runner for ``strategy`` on this engine's stores (not started)."""
        return StrategyRunner(
            strategy,
            sessions=self.sessions,
            timeseries=self._timeseries,
            catalog=self._catalog,
            outbox=self._outbox,
            orders=self._orders,
            activity=self._activity,
            grace=self.grace,
            max_replay_bars=self.max_replay_bars,
        )

    def running(self) -> set[int]:
        """Ids of the strategies whose runner has started (for tests and diagnostics)."""
        return {sid for worker in self._workers.values() for sid in worker.runners}

    async def run(self) -> None:
        """Run strategies until cancelled (i.e. until leadership ends)."""
        control = asyncio.create_task(self._listen_control(), name="strategy-engine:control")
        try:
            while True:
                try:
                    await self.refresh()
                except Exception:
                    log.exception("reading running strategies failed")
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can
                    # swallow a cancellation that races with its result, and a
                    # cancelled engine must stop (shutdown, lost leadership).
                    async with asyncio.timeout(self._poll_interval):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            tasks = [control, *(worker.task for worker in self._workers.values())]
            self._workers.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def refresh(self) -> None:
        """Match the workers to the RUNNING strategies in the database."""
        async with self.sessions() as session:
            rows = list(
                await session.scalars(
                    select(models.Strategy).where(
                        models.Strategy.status == StrategyStatus.RUNNING.value
                    )
                )
            )
        wanted: dict[str, dict[int, RunningStrategy]] = {}
        for row in rows:
            try:
                strategy = RunningStrategy.from_row(row)
            except StrategyConfigError as error:
                await self.mark_error(row.id, str(error))
                continue
            wanted.setdefault(strategy.symbol, {})[strategy.id] = strategy
        for symbol in list(self._workers):
            if symbol not in wanted:
                retired = self._workers.pop(symbol)
                retired.task.cancel()
                await asyncio.gather(retired.task, return_exceptions=True)
        for symbol, strategies in wanted.items():
            worker = self._workers.get(symbol)
            if worker is None:
                worker = _SymbolWorker(self, symbol)
                self._workers[symbol] = worker
            worker.wanted = strategies

    async def mark_error(self, strategy_id: int, reason: str) -> None:
        log.warning("strategy cannot run", strategy_id=strategy_id, reason=reason)
        async with self.sessions() as session:
            await session.execute(
                update(models.Strategy)
                .where(
                    models.Strategy.id == strategy_id,
                    models.Strategy.status == StrategyStatus.RUNNING.value,
                )
                .values(
                    status=StrategyStatus.ERROR.value,
                    status_reason=reason,
                    updated_at=datetime.now(UTC),
                )
            )
            await session.commit()

    async def _listen_control(self) -> None:
        async with self.hub.subscribe([CONTROL_CHANNEL], conflate=True) as box:
            while True:
                await box.get()
                self._wake.set()


class _SymbolWorker:
    """The runners of one symbol, fed from one lossless tick subscription."""

    def __init__(self, engine: StrategyEngine, symbol: str) -> None:
        self._engine = engine
        self.symbol = symbol
        self.wanted: dict[int, RunningStrategy] = {}
        self.runners: dict[int, StrategyRunner] = {}
        self.task = asyncio.create_task(self._run(), name=f"strategy-engine:{symbol}")

    async def _run(self) -> None:
        hub = self._engine.hub
        while True:
            self.runners = {}
            try:
                async with hub.subscribe(
                    [tick_channel(self.symbol)],
                    conflate=False,
                    capacity=self._engine.mailbox_capacity,
                ) as box:
                    # Subscribed before the runners read history, so no tick
                    # falls between the store and the stream.
                    await self._reconcile()
                    await self._pump(box)
            except SlowConsumerError:
                log.warning("strategy engine fell behind ticks; resyncing", symbol=self.symbol)
            except Exception:
                log.exception("strategy worker failed; resyncing", symbol=self.symbol)
                await asyncio.sleep(RETRY_DELAY)

    async def _pump(self, box: Mailbox) -> None:
        loop = asyncio.get_running_loop()
        interval = self._engine.timer_interval
        next_timer = loop.time() + interval
        while True:
            message = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.001, next_timer - loop.time())):
                    message = await box.get()
            if message is not None:
                tick = decode_tick(message.message)
                now = datetime.now(UTC)
                for runner in list(self.runners.values()):
                    await runner.on_tick(tick, now)
            if loop.time() >= next_timer:
                await self._reconcile()
                now = datetime.now(UTC)
                for runner in list(self.runners.values()):
                    await runner.on_timer(now)
                next_timer = loop.time() + interval
            self.runners = {sid: r for sid, r in self.runners.items() if not r.stopped}

    async def _reconcile(self) -> None:
        """Drop runners of stopped or edited strategies; start runners for new ones."""
        wanted = self.wanted
        for sid, runner in list(self.runners.items()):
            current = wanted.get(sid)
            if current is None or current.version != runner.strategy.version:
                del self.runners[sid]
        for sid, listed in wanted.items():
            if sid in self.runners:
                continue
            # Re-read the row: the poll's copy may predate the last bar recorded.
            async with self._engine.sessions() as session:
                row = await session.get(models.Strategy, sid, populate_existing=True)
            if row is None or row.status != StrategyStatus.RUNNING.value:
                continue
            try:
                strategy = RunningStrategy.from_row(row)
                runner = self._engine.new_runner(strategy)
                await runner.start(datetime.now(UTC))
            except StrategyConfigError as error:
                await self._engine.mark_error(sid, str(error))
                continue
            if not runner.stopped and strategy.version == listed.version:
                self.runners[sid] = runner
