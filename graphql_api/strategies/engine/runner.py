"""One running strategy: indicator state on closed bars, signals, auto-trade orders.

Going live (``last_bar_at`` is None after ``startStrategy``) warms the rule
up on the latest ``warmup_bars`` closed bars without emitting anything; the
last of them becomes ``last_bar_at`` (or ``1970-01-01`` when there is no
closed bar yet: "live, nothing evaluated", so every bar stored later is new)
and the first of them ``evaluated_from`` (``1970-01-01`` when none).

Every later start (engine restart, failover, resync, an edit while running)
rebuilds the rule's state by replaying, without emitting, every stored closed
bar from ``evaluated_from`` up to and including ``last_bar_at`` (the latest
``max_replay_bars`` of them at most): the bars an uninterrupted runner fed,
so EMA, RSI and MACD, which remember every bar, resume with the same state,
bit for bit. Only the bar-by-bar rules give that: the vectorised indicators
agree with them to ~1e-13, not exactly. The replay yields to the event loop
every :data:`REPLAY_CHUNK` bars. Closed bars after ``last_bar_at`` (closed
while no engine ran, at most ``max_catchup_bars`` of them) are then evaluated
like live bars. A row that went live before ``evaluated_from`` existed is
warmed up on ``warmup_bars`` bars once, and that replay's first bar is
recorded as its ``evaluated_from``.

For each closed bar, in one transaction: ``last_bar_at`` moves forward (only
forward, and only while the strategy is RUNNING) and the signal, if any, is
inserted. The unique ``(strategy_id, bar_time)`` constraint makes a second
signal for the same bar impossible; losing that race (IntegrityError) means
another engine already emitted and published it. The signal's announcement on
``signals.<user id>`` is staged in the transaction that finishes the signal
(:mod:`graphql_api.realtime.outbox`): it reaches the bus once committed, even
after a bus outage. So are its deliveries to the user's webhooks that want
``STRATEGY_SIGNAL`` (:func:`graphql_api.webhooks.registry.enqueue`).

With ``auto_trade``, a MARKET order of one lot (the symbol's lot size) goes
through :meth:`OrderService.place_order` — the same validation and risk checks
as a user's order — with ``client_order_id = "signal-<id>"`` (idempotent) and
``strategy_id`` set; its id is stored on the signal before the signal is
published. Orders are placed only for bars that closed less than one interval
(at least a minute) before the engine saw them close: a signal on a bar
evaluated late (catch-up after downtime, backfilled past ticks) is recorded
and published, but trading on it now would act on a price the rule never saw.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import CursorResult, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.market.late_ticks import is_late
from graphql_api.market.symbols import SymbolCatalog
from graphql_api.platform.activity import Activity
from graphql_api.realtime.channels import signal_channel
from graphql_api.realtime.events import encode_id_event
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.strategies.definitions import StrategyStatus
from graphql_api.strategies.engine.bars import DEFAULT_GRACE, BarBuilder, bucket_end
from graphql_api.strategies.rules import (
    InvalidParametersError,
    LiveRule,
    LiveSignal,
    make_live_rule,
    warmup_bars,
)
from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderType
from graphql_api.trading.orders import OrderService
from graphql_api.webhooks.registry import WebhookEvent, enqueue
from storage import models
from storage.engine import SessionFactory
from storage.repositories import symbols as symbol_repo
from storage.timeseries import Bar, KlineInterval, Tick, TimeSeriesStore
from storage.timeseries.buckets import EPOCH, floor_to_interval

__all__ = [
    "MAX_CATCHUP_BARS",
    "MAX_REPLAY_BARS",
    "REPLAY_CHUNK",
    "RunningStrategy",
    "StrategyConfigError",
    "StrategyRunner",
]

log = structlog.get_logger(__name__)

# Bars that closed while no engine ran and are still evaluated (with signals)
# on start; older ones only rebuild state.
MAX_CATCHUP_BARS = 1000
# Closed bars replayed from evaluated_from to rebuild the rule's state; beyond
# it the latest ones (STRATEGY_MAX_REPLAY_BARS overrides it).
MAX_REPLAY_BARS = 100_000
# Bars replayed between two yields to the event loop (a few milliseconds).
REPLAY_CHUNK = 1_000


class StrategyConfigError(Exception):
    """The strategy cannot run as defined (bad parameters, unknown symbol, ...)."""


@dataclass(frozen=True, slots=True)
class RunningStrategy:
    """What a runner needs of a strategy row, detached from any session."""

    id: int
    user_id: int
    kind: str
    symbol: str
    interval: KlineInterval
    parameters: Mapping[str, Any]
    auto_trade: bool
    last_bar_at: datetime | None
    evaluated_from: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: models.Strategy) -> RunningStrategy:
        try:
            interval = KlineInterval(row.interval)
        except ValueError as error:
            raise StrategyConfigError(f"unknown interval {row.interval!r}") from error
        return cls(
            id=row.id,
            user_id=row.user_id,
            kind=row.kind,
            symbol=row.symbol_code,
            interval=interval,
            parameters=dict(row.parameters or {}),
            auto_trade=row.auto_trade,
            last_bar_at=row.last_bar_at,
            evaluated_from=row.evaluated_from,
            updated_at=row.updated_at,
        )

    @property
    def version(self) -> tuple[int, datetime]:
        """Changes when the user edits or restarts the strategy: the runner is rebuilt."""
        return self.id, self.updated_at


class StrategyRunner:
    """Drives one strategy's live rule on closed bars.

    Parameters:
        strategy: the RUNNING strategy.
        sessions: the database (the strategy row, its signals, daily bars).
        timeseries: the stored bars that rebuild the rule's state.
        catalog: the symbol's lot size (one auto-trade order).
        outbox: where signal announcements are staged.
        orders: places the auto-trade orders, with a user's checks.
        activity: counts the signals emitted.
        grace: see :class:`~graphql_api.strategies.engine.bars.BarBuilder`.
        max_catchup_bars: bars closed while no engine ran that are evaluated on start.
        max_replay_bars: bars from ``evaluated_from`` replayed at most to rebuild state.

    Call :meth:`start` once, then feed :meth:`on_tick` and :meth:`on_timer`
    (``now`` is the wall clock, passed in so tests control it). After
    :attr:`stopped` turns true the strategy is no longer RUNNING: drop the runner.
    """

    def __init__(
        self,
        strategy: RunningStrategy,
        *,
        sessions: SessionFactory,
        timeseries: TimeSeriesStore,
        catalog: SymbolCatalog,
        outbox: EventOutbox,
        orders: OrderService,
        activity: Activity,
        grace: timedelta = DEFAULT_GRACE,
        max_catchup_bars: int = MAX_CATCHUP_BARS,
        max_replay_bars: int = MAX_REPLAY_BARS,
    ) -> None:
        self._sessions = sessions
        self._timeseries = timeseries
        self._catalog = catalog
        self._outbox = outbox
        self._orders = orders
        self._activity = activity
        self.strategy = strategy
        self._grace = grace
        self._max_catchup = max_catchup_bars
        self._max_replay = max_replay_bars
        self.last_bar_at = strategy.last_bar_at
        self.stopped = False
        self.signals_emitted = 0
        # What start() replayed to rebuild the rule's state (for diagnostics and tests).
        self.replayed = 0
        self.replayed_from: datetime | None = None
        self._rule: LiveRule | None = None
        self._builder = BarBuilder(strategy.symbol, strategy.interval, grace=grace)
        self._lot_size = Decimal(1)

    async def start(self, now: datetime) -> None:
        """Rebuild state from stored history and evaluate bars closed since ``last_bar_at``."""
        strategy = self.strategy
        try:
            self._rule = make_live_rule(strategy.kind, strategy.parameters)
            warmup = warmup_bars(strategy.kind, strategy.parameters)
        except InvalidParametersError as error:
            raise StrategyConfigError(f"invalid parameters: {error}") from error
        spec = (await self._catalog.get_many([strategy.symbol])).get(strategy.symbol)
        if spec is None:
            raise StrategyConfigError(f"unknown symbol {strategy.symbol!r}")
        self._lot_size = spec.lot_size

        last = self.last_bar_at
        since = strategy.evaluated_from if last is not None else None
        # Never fewer than the warm-up: a cap below it would leave the rule cold.
        replay_cap = max(self._max_replay, warmup) if since is not None else warmup
        bars = await self._history(replay_cap + self._max_catchup + 1, now, since)
        open_bar = None
        if bars and now < bucket_end(bars[-1].time, strategy.interval) + self._grace:
            open_bar = bars.pop()
        split = len(bars) if last is None else bisect.bisect_right([b.time for b in bars], last)
        older, new = bars[:split], bars[split:]
        if len(new) > self._max_catchup:
            older, new = older + new[: -self._max_catchup], new[-self._max_catchup :]
        replayed = older[-replay_cap:]
        await self._replay(replayed)
        first = replayed[0].time if replayed else EPOCH
        self.replayed, self.replayed_from = len(replayed), first
        if last is None:
            # Going live: the bars just replayed count as evaluated. With no
            # closed bar at all, EPOCH says "live, nothing evaluated yet", so a
            # resync or restart evaluates every bar stored since (None would
            # make it treat them as history).
            await self._go_live(older[-1].time if older else EPOCH, first)
            if self.stopped:
                return
        elif since is None:
            await self._record_evaluated_from(first)
        edges = [
            moment for moment in (self.last_bar_at, older[-1].time if older else None) if moment
        ]
        self._builder = BarBuilder(
            strategy.symbol, strategy.interval, after=max(edges, default=None), grace=self._grace
        )
        for bar in new:
            await self._evaluate(bar, now)
            if self.stopped:
                return
        if open_bar is not None:
            self._builder.seed(open_bar, received_at=now)
        log.info(
            "strategy runner started",
            strategy_id=strategy.id,
            replayed=self.replayed,
            replayed_from=self.replayed_from,
            caught_up=len(new),
            last_bar_at=self.last_bar_at,
        )

    async def on_tick(self, tick: Tick, now: datetime) -> None:
        for bar in self._builder.on_tick(tick, received_at=now):
            await self._evaluate(bar, now)

    async def on_timer(self, now: datetime) -> None:
        bar = self._builder.on_timer(now)
        if bar is not None:
            await self._evaluate(bar, now)

    async def _replay(self, bars: list[Bar]) -> None:
        """Feed ``bars`` to the rule without emitting, yielding to the loop between chunks."""
        for start in range(0, len(bars), REPLAY_CHUNK):
            if start:
                await asyncio.sleep(0)
            for bar in bars[start : start + REPLAY_CHUNK]:
                self._feed(bar)

    def _feed(self, bar: Bar) -> LiveSignal | None:
        assert self._rule is not None, "start() first"
        return self._rule.on_bar(float(bar.close), float(bar.high), float(bar.low))

    async def _evaluate(self, bar: Bar, now: datetime) -> None:
        if self.stopped or (self.last_bar_at is not None and bar.time <= self.last_bar_at):
            return
        live = self._feed(bar)
        trades = self.strategy.auto_trade and self._is_fresh(bar, now)
        # A signal that trades is announced with its order link, after the order.
        signal = await self._record(bar, live, now, announce=not trades)
        if signal is None:
            return
        self.signals_emitted += 1
        self._activity.signals += 1
        if trades:
            await self._trade(signal)

    async def _announce(self, session: AsyncSession, signal: models.Signal) -> None:
        """Stage the signal's event and its webhook deliveries, in ``session``'s transaction."""
        self._outbox.stage(
            session,
            signal_channel(self.strategy.user_id),
            encode_id_event(
                "signal", signal.id, strategyId=self.strategy.id, symbol=self.strategy.symbol
            ),
        )
        await enqueue(
            session,
            self._outbox,
            self.strategy.user_id,
            WebhookEvent.STRATEGY_SIGNAL,
            f"signal:{signal.id}",
            signal_webhook_body(signal),
        )

    async def _record(
        self, bar: Bar, live: LiveSignal | None, now: datetime, *, announce: bool
    ) -> models.Signal | None:
        """Advance ``last_bar_at`` to ``bar`` and insert its signal, in one transaction
        (with its announcement when ``announce``).

        Returns the stored signal, or None: no signal, already emitted by
        another engine, or the strategy is no longer RUNNING (sets ``stopped``).
        """
        strategy = models.Strategy
        async with self._sessions() as session:
            advanced: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
                update(strategy)
                .where(
                    strategy.id == self.strategy.id,
                    strategy.status == StrategyStatus.RUNNING.value,
                    or_(strategy.last_bar_at.is_(None), strategy.last_bar_at < bar.time),
                )
                .values(last_bar_at=bar.time)
            )
            if advanced.rowcount == 0:
                await session.rollback()
                await self._explain_no_advance(bar)
                return None
            signal = None
            if live is not None:
                signal = models.Signal(
                    strategy_id=self.strategy.id,
                    symbol_code=self.strategy.symbol,
                    side=live.side,
                    price=bar.close,
                    bar_time=bar.time,
                    reason=live.reason,
                    order_id=None,
                    created_at=datetime.now(UTC),
                )
                session.add(signal)
            try:
                if signal is not None and announce:
                    await session.flush()  # the id, for the announcement
                    await self._announce(session, signal)
                await session.commit()
            except IntegrityError:
                # The signal of this bar exists: another engine (a leader that
                # lost its lock mid-bar) emitted and published it. Not ours.
                await session.rollback()
                log.info("signal already emitted", strategy_id=self.strategy.id, bar=bar.time)
                await self._advance_only(bar)
                signal = None
        self.last_bar_at = bar.time
        return signal

    async def _go_live(self, baseline: datetime, evaluated_from: datetime) -> None:
        strategy = models.Strategy
        async with self._sessions() as session:
            result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
                update(strategy)
                .where(
                    strategy.id == self.strategy.id,
                    strategy.status == StrategyStatus.RUNNING.value,
                    strategy.last_bar_at.is_(None),
                )
                .values(last_bar_at=baseline, evaluated_from=evaluated_from)
            )
            await session.commit()
        if result.rowcount == 0:
            await self._explain_no_advance(None)
        else:
            self.last_bar_at = baseline

    async def _record_evaluated_from(self, evaluated_from: datetime) -> None:
        """For a row that went live before ``evaluated_from`` existed: where this runner's
        state begins, so later rebuilds replay from the same bar."""
        strategy = models.Strategy
        async with self._sessions() as session:
            await session.execute(
                update(strategy)
                .where(strategy.id == self.strategy.id, strategy.evaluated_from.is_(None))
                .values(evaluated_from=evaluated_from)
            )
            await session.commit()

    async def _advance_only(self, bar: Bar) -> None:
        strategy = models.Strategy
        async with self._sessions() as session:
            await session.execute(
                update(strategy)
                .where(
                    strategy.id == self.strategy.id,
                    or_(strategy.last_bar_at.is_(None), strategy.last_bar_at < bar.time),
                )
                .values(last_bar_at=bar.time)
            )
            await session.commit()

    async def _explain_no_advance(self, bar: Bar | None) -> None:
        async with self._sessions() as session:
            row = await session.get(models.Strategy, self.strategy.id)
        if row is None or row.status != StrategyStatus.RUNNING.value:
            self.stopped = True
            return
        # Someone else already evaluated this bar (another engine): follow them.
        log.info("bar already evaluated elsewhere", strategy_id=row.id, bar=bar and bar.time)
        self.last_bar_at = row.last_bar_at

    def _is_fresh(self, bar: Bar, now: datetime) -> bool:
        window = max(self.strategy.interval.duration, timedelta(minutes=1)) + self._grace
        closed_at = bucket_end(bar.time, self.strategy.interval)
        return not is_late(closed_at, now=now, max_lag=window)

    async def _trade(self, signal: models.Signal) -> None:
        request = OrderRequest(
            symbol=self.strategy.symbol,
            side=OrderSide(signal.side),
            type=OrderType.MARKET,
            quantity=self._lot_size,
            client_order_id=f"signal-{signal.id}",
            strategy_id=self.strategy.id,
        )
        order: models.Order | None = None
        try:
            outcome = await self._orders.place_order(self.strategy.user_id, request)
        except Exception:
            # The signal stands either way; a broken order path must not stop the engine.
            log.exception("auto-trade order failed", signal_id=signal.id)
        else:
            order = outcome.order
            if order is None:
                log.warning(
                    "auto-trade order refused",
                    signal_id=signal.id,
                    errors=[f"{e.field}: {e.message}" for e in outcome.errors],
                )
        async with self._sessions() as session:
            if order is not None:
                signal.order_id = order.id
                await session.execute(
                    update(models.Signal)
                    .where(models.Signal.id == signal.id)
                    .values(order_id=order.id)
                )
            await self._announce(session, signal)
            await session.commit()

    async def _history(self, limit: int, now: datetime, since: datetime | None) -> list[Bar]:
        """Stored bars (the last one possibly still open), oldest first: those from
        ``since`` on if there are fewer than ``limit``, else the latest ``limit``."""
        if since is not None:
            bars = await self._bars(limit, now, since)
            if len(bars) < limit:
                return [bar for bar in bars if bar.time >= since]
        return await self._bars(limit, now, None)

    async def _bars(self, limit: int, now: datetime, since: datetime | None) -> list[Bar]:
        """The first ``limit`` stored bars from ``since``, or the latest ``limit`` without it."""
        strategy = self.strategy
        if strategy.interval.is_intraday:
            return await self._timeseries.klines(
                strategy.symbol, strategy.interval, since, None, limit
            )
        # 1d: the daily table holds history; days after its last row come from ticks.
        async with self._sessions() as session:
            rows = await symbol_repo.daily_bars(
                session,
                strategy.symbol,
                start=None if since is None else since.astimezone(UTC).date(),
                end=_next_day(now),
                limit=limit,
            )
        days = [symbol_repo.daily_bar_to_bar(row) for row in rows]
        hour_limit = limit * 24
        if since is not None:
            hour_limit = min(hour_limit, ((now - since).days + 2) * 24)
        hours = await self._timeseries.klines(
            strategy.symbol, KlineInterval.HOUR_1, None, None, hour_limit
        )
        stored_until = days[-1].time if days else None
        from_ticks = [
            day for day in days_from_hours(hours) if stored_until is None or day.time > stored_until
        ]
        together = days + from_ticks
        return together[:limit] if since is not None else together[-limit:]


def days_from_hours(hours: list[Bar]) -> list[Bar]:
    """Aggregate ascending hourly bars into UTC days."""
    days: list[Bar] = []
    for hour in hours:
        day = floor_to_interval(hour.time, KlineInterval.DAY_1)
        if days and days[-1].time == day:
            last = days[-1]
            days[-1] = Bar(
                last.symbol,
                day,
                last.open,
                max(last.high, hour.high),
                min(last.low, hour.low),
                hour.close,
                last.volume + hour.volume,
                last.trade_count + hour.trade_count,
            )
        else:
            days.append(
                Bar(
                    hour.symbol,
                    day,
                    hour.open,
                    hour.high,
                    hour.low,
                    hour.close,
                    hour.volume,
                    hour.trade_count,
                )
            )
    return days


def signal_webhook_body(signal: models.Signal) -> str:
    """The JSON a webhook receives for a signal (amounts as strings, times ISO 8601)."""
    return json.dumps(
        {
            "event": WebhookEvent.STRATEGY_SIGNAL.value,
            "signal": {
                "id": str(signal.id),
                "strategyId": str(signal.strategy_id),
                "symbol": signal.symbol_code,
                "side": signal.side,
                "price": format(signal.price, "f"),
                "barTime": signal.bar_time.isoformat(),
                "reason": signal.reason,
                "orderId": str(signal.order_id) if signal.order_id is not None else None,
            },
        },
        separators=(",", ":"),
    )


def _next_day(now: datetime) -> date:
    return now.astimezone(UTC).date() + timedelta(days=1)
