"""One running strategy: indicator state on closed bars, signals, auto-trade orders.

Start-up (and every resync) rebuilds the rule's state from stored history:
the latest ``warmup_bars`` closed bars up to and including ``last_bar_at``
are replayed without emitting anything; closed bars after ``last_bar_at``
(closed while no engine ran, at most ``max_catchup_bars`` of them) are then
evaluated like live bars. ``last_bar_at`` is None after ``startStrategy``:
the strategy then goes live from the current bar, and the last replayed bar
becomes its ``last_bar_at`` (or ``1970-01-01`` when there is no closed bar
yet: "live, nothing evaluated", so every bar stored later is new).

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

__all__ = ["MAX_CATCHUP_BARS", "RunningStrategy", "StrategyConfigError", "StrategyRunner"]

log = structlog.get_logger(__name__)

# Bars that closed while no engine ran and are still evaluated (with signals)
# on start; older ones only rebuild state.
MAX_CATCHUP_BARS = 1000


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
        self.last_bar_at = strategy.last_bar_at
        self.stopped = False
        self.signals_emitted = 0
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

        bars = await self._history(warmup + self._max_catchup + 1, now)
        open_bar = None
        if bars and now < bucket_end(bars[-1].time, strategy.interval) + self._grace:
            open_bar = bars.pop()
        last = self.last_bar_at
        split = len(bars) if last is None else bisect.bisect_right([b.time for b in bars], last)
        older, new = bars[:split], bars[split:]
        if len(new) > self._max_catchup:
            older, new = older + new[: -self._max_catchup], new[-self._max_catchup :]
        for bar in older[-warmup:]:
            self._feed(bar)
        if last is None:
            # Going live: the bars just replayed count as evaluated. With no
            # closed bar at all, EPOCH says "live, nothing evaluated yet", so a
            # resync or restart evaluates every bar stored since (None would
            # make it treat them as history).
            await self._go_live(older[-1].time if older else EPOCH)
            if self.stopped:
                return
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
            replayed=min(len(older), warmup),
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

    async def _go_live(self, baseline: datetime) -> None:
        strategy = models.Strategy
        async with self._sessions() as session:
            result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
                update(strategy)
                .where(
                    strategy.id == self.strategy.id,
                    strategy.status == StrategyStatus.RUNNING.value,
                    strategy.last_bar_at.is_(None),
                )
                .values(last_bar_at=baseline)
            )
            await session.commit()
        if result.rowcount == 0:
            await self._explain_no_advance(None)
        else:
            self.last_bar_at = baseline

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

    async def _history(self, limit: int, now: datetime) -> list[Bar]:
        """The latest ``limit`` stored bars (the last one possibly still open), oldest first."""
        strategy = self.strategy
        if strategy.interval.is_intraday:
            return await self._timeseries.klines(
                strategy.symbol, strategy.interval, None, None, limit
            )
        # 1d: the daily table holds history; days after its last row come from ticks.
        async with self._sessions() as session:
            rows = await symbol_repo.daily_bars(
                session, strategy.symbol, start=None, end=_next_day(now), limit=limit
            )
        days = [symbol_repo.daily_bar_to_bar(row) for row in rows]
        hours = await self._timeseries.klines(
            strategy.symbol, KlineInterval.HOUR_1, None, None, limit * 24
        )
        stored_until = days[-1].time if days else None
        from_ticks = [
            day for day in days_from_hours(hours) if stored_until is None or day.time > stored_until
        ]
        return (days + from_ticks)[-limit:]


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
