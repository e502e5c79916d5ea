"""The alert engine: one per cluster, evaluates every ACTIVE alert on live ticks and bars.

Run :meth:`AlertEngine.run` under ``Leadership(engine, "alert-engine")`` so one
process evaluates alerts at a time; a leader that lost its lock mid-tick cannot
store a firing twice (:mod:`.firings`).

Which alerts are active is read from the ``alerts`` table at once when an
alert is created, paused, resumed or deleted (an event on
:data:`~graphql_api.realtime.channels.ALERTS_CONTROL_CHANNEL`), and every
``poll_interval`` seconds in case such an event was lost. Each read also marks
alerts past their ``expires_at`` EXPIRED (an expired alert never fires even
before that: the book and the firing's transaction both check the time).

One worker per symbol with active alerts subscribes to that symbol's ticks,
lossless (like the strategy engine: a conflating mailbox would skip prices an
alert must see), and feeds them to the symbol's :class:`~.book.SymbolBook`;
whatever the book reports met is stored and announced. The worker first reads
the symbol's latest stored tick, so the first live tick can already cross a
level; indicator alerts replay stored bars to warm their indicators. A worker
that falls behind resubscribes and rebuilds its book from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import CursorResult, select, update

from graphql_api.alerts.book import SymbolBook, Trigger, WatchedAlert
from graphql_api.alerts.conditions import AlertStatus
from graphql_api.alerts.firings import record_firing
from graphql_api.platform.activity import Activity
from graphql_api.realtime.channels import ALERTS_CONTROL_CHANNEL, tick_channel
from graphql_api.realtime.events import decode_tick
from graphql_api.realtime.hub import Hub, Mailbox, SlowConsumerError
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.strategies.engine.bars import DEFAULT_GRACE
from storage import models
from storage.engine import SessionFactory
from storage.timeseries import TimeSeriesStore

__all__ = ["AlertEngine"]

log = structlog.get_logger(__name__)

WORKER_MAILBOX = 10_000
RETRY_DELAY = 1.0


class AlertEngine:
    """Parameters:
    sessions: the database (active alerts, firings).
    hub: the tick channels and the control channel.
    timeseries: the latest tick and the bars that warm indicators.
    outbox: where firing announcements are staged.
    activity: counts the firings.
    poll_interval: seconds between reads of the active alerts.
    timer_interval: seconds between timer checks that close quiet bars.
    grace: how long past a bucket's end a bar waits for late ticks.
    mailbox_capacity: ticks a symbol worker may fall behind before it resyncs.
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        hub: Hub,
        timeseries: TimeSeriesStore,
        outbox: EventOutbox,
        activity: Activity,
        poll_interval: float = 5.0,
        timer_interval: float = 0.5,
        grace: timedelta = DEFAULT_GRACE,
        mailbox_capacity: int = WORKER_MAILBOX,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.timeseries = timeseries
        self.outbox = outbox
        self.activity = activity
        self._poll_interval = poll_interval
        self.timer_interval = timer_interval
        self.grace = grace
        self.mailbox_capacity = mailbox_capacity
        self._workers: dict[str, _SymbolWorker] = {}
        self._wake = asyncio.Event()
        self.firings = 0

    def watching(self) -> set[int]:
        """Ids of the alerts indexed right now (for tests and diagnostics)."""
        return {aid for worker in self._workers.values() for aid in worker.book.alerts}

    async def run(self) -> None:
        """Evaluate alerts until cancelled (i.e. until leadership ends)."""
        control = asyncio.create_task(self._listen_control(), name="alert-engine:control")
        try:
            while True:
                try:
                    await self.refresh()
                except Exception:
                    log.exception("reading active alerts failed")
                with contextlib.suppress(TimeoutError):
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
        """Expire what is due; match the workers to the ACTIVE alerts in the database."""
        now = datetime.now(UTC)
        alert = models.Alert
        async with self.sessions() as session:
            due = (
                alert.status.in_([AlertStatus.ACTIVE.value, AlertStatus.PAUSED.value]),
                alert.expires_at.is_not(None),
                alert.expires_at <= now,
            )
            # Look before writing: most reads find nothing due, and a write would take
            # SQLite's database-wide write lock every poll.
            if await session.scalar(select(alert.id).where(*due).limit(1)) is not None:
                expired: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
                    update(alert)
                    .where(*due)
                    .values(status=AlertStatus.EXPIRED.value, updated_at=now)
                )
                log.info("alerts expired", count=expired.rowcount)
                await session.commit()
            rows = list(
                await session.scalars(select(alert).where(alert.status == AlertStatus.ACTIVE.value))
            )
        wanted: dict[str, dict[int, WatchedAlert]] = {}
        for row in rows:
            watched = WatchedAlert.from_row(row)
            wanted.setdefault(watched.symbol, {})[watched.id] = watched
        for symbol in list(self._workers):
            if symbol not in wanted:
                retired = self._workers.pop(symbol)
                retired.task.cancel()
                await asyncio.gather(retired.task, return_exceptions=True)
        for symbol, alerts in wanted.items():
            worker = self._workers.get(symbol)
            if worker is None:
                worker = _SymbolWorker(self, symbol)
                self._workers[symbol] = worker
            worker.wanted = alerts
            worker.changed.set()

    async def fire(self, triggers: list[Trigger]) -> None:
        for trigger in triggers:
            stored = await record_firing(self.sessions, self.outbox, trigger)
            if stored is not None:
                self.firings += 1
                self.activity.alert_firings += 1
                log.info("alert fired", alert_id=trigger.alert.id, firing_id=stored.id)

    async def _listen_control(self) -> None:
        async with self.hub.subscribe([ALERTS_CONTROL_CHANNEL], conflate=True) as box:
            while True:
                await box.get()
                self._wake.set()


class _SymbolWorker:
    """One symbol's book, fed from one lossless tick subscription."""

    def __init__(self, engine: AlertEngine, symbol: str) -> None:
        self._engine = engine
        self.symbol = symbol
        self.wanted: dict[int, WatchedAlert] = {}
        self.changed = asyncio.Event()
        self.book = SymbolBook(symbol, grace=engine.grace)
        self.task = asyncio.create_task(self._run(), name=f"alert-engine:{symbol}")

    async def _run(self) -> None:
        engine = self._engine
        while True:
            self.book = SymbolBook(self.symbol, grace=engine.grace)
            try:
                async with engine.hub.subscribe(
                    [tick_channel(self.symbol)], conflate=False, capacity=engine.mailbox_capacity
                ) as box:
                    # Subscribed before reading the store, so no tick falls in between.
                    latest = await engine.timeseries.latest_ticks([self.symbol])
                    self.book.last = latest.get(self.symbol)
                    await self._reconcile()
                    await self._pump(box)
            except SlowConsumerError:
                log.warning("alert engine fell behind ticks; resyncing", symbol=self.symbol)
            except Exception:
                log.exception("alert worker failed; resyncing", symbol=self.symbol)
                await asyncio.sleep(RETRY_DELAY)

    async def _pump(self, box: Mailbox) -> None:
        engine = self._engine
        loop = asyncio.get_running_loop()
        next_timer = loop.time() + engine.timer_interval
        while True:
            message = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.001, next_timer - loop.time())):
                    message = await box.get()
            if self.changed.is_set():
                await self._reconcile()
            if message is not None:
                tick = decode_tick(message.message)
                await engine.fire(self.book.on_tick(tick, datetime.now(UTC)))
            if loop.time() >= next_timer:
                await engine.fire(self.book.on_timer(datetime.now(UTC)))
                next_timer = loop.time() + engine.timer_interval

    async def _reconcile(self) -> None:
        """Index new or changed alerts, drop gone ones, warm new indicators."""
        self.changed.clear()
        wanted, book = self.wanted, self.book
        for alert_id, indexed in list(book.alerts.items()):
            current = wanted.get(alert_id)
            if current is None or current.version != indexed.version:
                book.remove(alert_id)
        cold = set()
        for alert_id, alert in wanted.items():
            if alert_id not in book.alerts:
                interval = book.add(alert)
                if interval is not None:
                    cold.add(interval)
        now = datetime.now(UTC)
        for interval in cold:
            bars = await self._engine.timeseries.klines(
                self.symbol, interval, None, None, book.warmup_needed(interval) + 1
            )
            book.warm(interval, bars, now)
