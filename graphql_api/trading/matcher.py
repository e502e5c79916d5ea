"""The paper matching engine: fills resting orders against live ticks.

One matcher runs per cluster (see :mod:`graphql_api.platform.leader`). It keeps an
in-memory price-time order book per symbol (:class:`graphql_api.trading.book.OrderBook`)
— loaded from the database when it takes over, fed with new orders from the
``orders.new`` channel and rebuilt from the database periodically — and evaluates
every tick of every symbol in arrival order. A tick touches only the orders it
acts on: the best price levels it crosses, MARKET, IOC and FOK orders, and orders
whose expiry it reaches; they are processed in time (id) priority across both
sides, so its cost does not grow with the orders resting away from the market,
and the once-a-second DAY expiry reads an expiry heap instead of scanning the
book. The rules:

- only ticks stamped at or after the order's creation fill it (less
  ``clock_tolerance``, for feeds whose clocks lag ours), and late ticks —
  older than the symbol's latest tick or than ``max_tick_lag`` (see
  :mod:`graphql_api.market.late_ticks`) — are history and fill nothing: a back-dated
  tick never fills at a price the market had before the order existed;
- MARKET orders fill on the first such tick, at its ask (buy) or bid (sell);
- STOP and STOP_LIMIT orders wait until a tick's last price reaches their stop
  price (buy: at or above, sell: at or below); the trigger is recorded (its
  own version bump), and from that tick on they act as MARKET / LIMIT orders;
- LIMIT orders fill when a tick crosses (buy: ask <= limit, sell: bid >= limit),
  at that ask or bid — the limit price or better;
- IOC orders get exactly one such tick: what does not fill on it expires;
- FOK orders get exactly one such tick too, and fill on it completely or not
  at all (it does not cross, its volume is short, or the reservation cannot
  pay for all of it): then the whole order expires (or is canceled with the
  reservation's reason) without a trade and takes no volume;
- DAY orders expire at their symbol's session close, GTD orders at their own
  ``expires_at``, and no tick stamped at or after it fills them (even before
  housekeeping has expired them);
- with ``PARTIAL_FILLS``, a tick fills at most its own volume (in whole lots),
  shared by the orders in time priority; only fills actually written consume
  it (an order canceled meanwhile takes nothing);
- a BUY spends at most what it reserved (:func:`graphql_api.trading.fills.decide_fill`);
- a halted symbol's ticks fill nothing: its orders rest as they are until it resumes
  (DAY orders still expire at the session close);
- a tick stamped outside its symbol's trading session (see
  :mod:`graphql_api.market.sessions`) fills and triggers nothing: orders accepted
  while the market was closed (policy REST) wait for the first tick after the open.

What a tick does to its acting orders — fills, the IOC/FOK and expiry closes —
is decided in memory and committed in ONE transaction per up to
:data:`~graphql_api.trading.fill_batch.MAX_BATCH_ORDERS` orders
(:class:`graphql_api.trading.fill_batch.FillBatch`): trades, positions, cash,
order versions and the ``orderUpdates`` announcements (staged in the event
outbox, so published in order once it commits). Each fill is still fenced by
its order's version, so it is never applied twice even across a failover; an
order that moved is skipped and the rest of the batch applies. The book is
updated only after the commit. The once-a-second expiry pass is batched the
same way; stop triggers remain one small transaction per order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import structlog

from graphql_api.market.late_ticks import TickWatermark
from graphql_api.market.symbols import SymbolCatalog, SymbolSpec
from graphql_api.platform.activity import Activity
from graphql_api.realtime.channels import (
    ORDERS_NEW_CHANNEL,
    SYMBOL_CHANGES_CHANNEL,
    tick_channel,
)
from graphql_api.realtime.events import decode_id_event, decode_tick
from graphql_api.realtime.hub import Hub, SlowConsumerError
from graphql_api.trading.book import FINGERPRINT_BUCKET, OrderBook, RestingOrder
from graphql_api.trading.fill_batch import MAX_BATCH_ORDERS, FillBatch, StaleBatchError
from graphql_api.trading.fills import trigger_order
from graphql_api.trading.order_types import (
    IMMEDIATE_TIME_IN_FORCE,
    OrderChange,
    OrderStatus,
    TimeInForce,
)
from graphql_api.trading.orders import OrderService
from graphql_api.trading.risk import RiskPolicy
from graphql_api.trading.shards import ALL_SYMBOLS, MatcherShard
from storage.engine import SessionFactory
from storage.repositories import accounts as account_repo
from storage.timeseries import Tick

log = structlog.get_logger(__name__)

MATCHER_MAILBOX = 100_000
# A batch the write-time fence trips is decided again from a fresh read; a second
# trip in a row means something else is writing the same orders: give up loudly.
STALE_BATCH_RETRIES = 3

_T = TypeVar("_T")


class PaperMatcher:
    """Parameters:
    sessions: database sessions (one transaction per tick's batch of fills).
    hub: ticks in; order updates out (through ``orders``).
    catalog: lot sizes and quote currencies.
    orders: announces order changes.
    risk_policy: commission and short-selling settings.
    partial_fills: bound fills by tick volume.
    resync_every: seconds between checks of the book against the database
        (:meth:`reconcile`; the full reload, :meth:`resync`, is for taking over).
    clock_tolerance: how far before an order's creation a tick may be stamped
        and still fill it (feeds whose clocks lag the server's).
    max_tick_lag: a tick further behind the clock than this is late.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        hub: Hub,
        catalog: SymbolCatalog,
        orders: OrderService,
        risk_policy: RiskPolicy,
        *,
        partial_fills: bool = False,
        resync_every: float = 5.0,
        clock_tolerance: timedelta = timedelta(0),
        max_tick_lag: timedelta = timedelta(seconds=5),
        activity: Activity | None = None,
        shard: MatcherShard = ALL_SYMBOLS,
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._catalog = catalog
        self._orders = orders
        self._risk_policy = risk_policy
        self._partial_fills = partial_fills
        self._resync_every = resync_every
        self._books: dict[str, OrderBook] = {}
        self._activity = activity or Activity()
        self.shard = shard
        self._progress = self._activity.matcher_progress(shard.name)
        self._clock_tolerance = clock_tolerance
        self.watermark = TickWatermark(max_tick_lag)

    async def run(self) -> None:
        """Match until cancelled; resubscribe (and resync) if we ever fall behind."""
        while True:
            try:
                await self._run_once()
            except SlowConsumerError:
                self._activity.matcher_overflows += 1
                log.warning("matcher fell behind the tick stream; resyncing")

    async def _run_once(self) -> None:
        owns = self.shard.owns
        channels = [tick_channel(spec.code) for spec in self._catalog.all() if owns(spec.code)]
        # A symbol listed while we run is announced here: start following its ticks.
        channels += [ORDERS_NEW_CHANNEL, SYMBOL_CHANGES_CHANNEL]
        async with self._hub.subscribe(channels, conflate=False, capacity=MATCHER_MAILBOX) as box:
            await self.resync()
            housekeeping = asyncio.create_task(self._housekeeping(), name="matcher-housekeeping")
            progress = self._progress  # the lag metrics read it when scraped
            progress.attach(box)
            try:
                while True:
                    message = await box.get()
                    progress.take(message.received)
                    if message.channel == ORDERS_NEW_CHANNEL:
                        self.on_order_event(decode_id_event(message.message))
                    elif message.channel == SYMBOL_CHANGES_CHANNEL:
                        if owns(message.message):
                            await self._hub.listen(box, [tick_channel(message.message)])
                    else:
                        await self.on_tick(decode_tick(message.message))
                    progress.done()
            finally:
                progress.detach()
                housekeeping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await housekeeping

    async def _housekeeping(self) -> None:
        """Expire DAY orders every second; reconcile the book every ``resync_every`` seconds.

        It shares the event loop with the tick loop, never running inside it, so
        book changes happen between ticks, not in the middle of one.
        """
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + self._resync_every
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.expire_day_orders(datetime.now(UTC))
                if loop.time() >= next_resync:
                    await self.reconcile()
                    next_resync = loop.time() + self._resync_every
            except Exception as error:  # a failed pass is retried on the next one
                log.warning("matcher housekeeping failed", error=str(error))

    async def resync(self) -> None:
        async with self._sessions() as session:
            rows = await account_repo.all_open_orders(session)
        books: dict[str, OrderBook] = {}
        for row in rows:
            if not self.shard.owns(row.symbol_code):
                continue  # another shard's
            book = books.get(row.symbol_code)
            if book is None:
                book = books[row.symbol_code] = OrderBook()
            book.add(RestingOrder.from_row(row))
        self._books = books

    async def reconcile(self) -> None:
        """Bring the book in line with the database, reading only what differs.

        The book follows ``orders.new`` events; this catches what the bus lost
        (an outage, a process that died between its commit and its publish).
        It must not cost what the full reload costs: with 100,000 resting
        orders, reading every row through the ORM held the event loop for
        seconds, and every tick meanwhile waited. So the database first sums
        each symbol's open orders (count, ids, versions: one row per symbol);
        a symbol whose sums differ from the book's is summed again per bucket of
        consecutive ids; only a bucket that differs is compared order by order
        (at most ``FINGERPRINT_BUCKET`` ``(id, version)`` pairs, with ticks
        matched between buckets); and only the orders that differ are read in
        full. An order in flight (committed, its event not yet heard) is the
        usual difference: one bucket, not the whole book.
        """
        async with self._sessions() as session:
            stored = await account_repo.open_order_fingerprints(session)
        owned = {symbol for symbol in stored if self.shard.owns(symbol)}
        for symbol in sorted(owned | set(self._books)):
            book = self._books.get(symbol)
            held = book.fingerprint() if book is not None else (0, 0, 0)
            fingerprint = stored.get(symbol, account_repo.BookFingerprint())
            if held != fingerprint.sums():
                await self._reconcile_symbol(symbol)

    async def _reconcile_symbol(self, symbol: str) -> None:
        async with self._sessions() as session:
            stored = await account_repo.open_order_bucket_fingerprints(
                session, symbol, FINGERPRINT_BUCKET
            )
        book = self._books.get(symbol)
        held = book.bucket_fingerprints() if book is not None else {}
        booked = dropped = 0
        for bucket in sorted(stored.keys() | held.keys()):
            sums = stored.get(bucket)
            if held.get(bucket) != (sums.sums() if sums is not None else None):
                behind, gone = await self._reconcile_bucket(symbol, bucket)
                booked += behind
                dropped += gone
        if booked or dropped:
            log.info("matcher book reconciled", symbol=symbol, booked=booked, dropped=dropped)

    async def _reconcile_bucket(self, symbol: str, bucket: int) -> tuple[int, int]:
        """Compare one bucket of ids order by order; returns (booked, dropped)."""
        first = bucket * FINGERPRINT_BUCKET
        async with self._sessions() as session:
            stored = dict(
                await account_repo.open_order_versions(
                    session, symbol, first_id=first, end_id=first + FINGERPRINT_BUCKET
                )
            )
        book = self._books.get(symbol)
        held = book.versions_in(bucket) if book is not None else {}
        # Newer in the database (or missed): read and book them. Held but no longer
        # open there: read them to see whether they closed at or after our version.
        behind = [
            order_id for order_id, version in stored.items() if held.get(order_id, -1) < version
        ]
        gone = [order_id for order_id in held if order_id not in stored]
        for start in range(0, len(behind) + len(gone), MAX_BATCH_ORDERS):
            ids = (behind + gone)[start : start + MAX_BATCH_ORDERS]
            async with self._sessions() as session:
                rows = await account_repo.orders_by_ids(session, ids)
            found = {row.id: row for row in rows}
            for order_id in ids:
                self._apply_row(symbol, order_id, found.get(order_id))
        return len(behind), len(gone)

    def _apply_row(self, symbol: str, order_id: int, row: Any) -> None:
        """Make the book agree with ``row`` (None: no such order any more), unless the
        book already holds a later version (the tick loop moved it meanwhile)."""
        book = self._books.get(symbol)
        held = book.get(order_id) if book is not None else None
        if row is None:
            if book is not None:
                book.discard(order_id)
            return
        if held is not None and held.version > row.version:
            return
        if row.status in account_repo.OPEN_STATUSES:
            if held is None or held.version < row.version:
                self.book_order(RestingOrder.from_row(row))
        elif book is not None:
            book.discard(order_id)

    def book(self, symbol: str) -> OrderBook | None:
        """The book of ``symbol`` as the matcher holds it now (for inspection)."""
        return self._books.get(symbol)

    def on_order_event(self, event: dict[str, Any]) -> None:
        """Book a new or amended order, or drop a canceled one (``orders.new``).

        An event older than what the book holds (a lower version: the matcher
        filled the order since, or a resync read a later row) changes nothing.
        """
        symbol = str(event["symbol"])
        if not self.shard.owns(symbol):
            return  # another shard matches it
        book = self._books.get(symbol)
        held = book.get(int(event["id"])) if book is not None else None
        if held is not None and held.version > int(event["version"]):
            return
        if event.get("kind") == "closed":
            if book is not None:
                book.discard(int(event["id"]))
            return
        self.book_order(RestingOrder.from_event(event))

    def book_order(self, order: RestingOrder) -> None:
        """Book ``order``, replacing what the book held under its id."""
        book = self._books.get(order.symbol)
        if book is None:
            book = self._books[order.symbol] = OrderBook()
        book.add(order)

    async def on_tick(self, tick: Tick) -> None:
        if not self.watermark.admit(tick, datetime.now(UTC)):
            return
        book = self._books.get(tick.symbol)
        if not book:
            return
        # Stops this tick's last price triggers act as MARKET / LIMIT from it on,
        # this tick included (the trade that triggers a stop is the market it meets);
        # a halted symbol's stops wait, as its other orders do.
        stops = book.triggered_by(tick, self._clock_tolerance)
        if stops and await self._trades_at(tick.symbol, tick.time):
            for order in stops:
                if order.expires_at is None or tick.time < order.expires_at:
                    await self._trigger(order, tick)
        # Only the orders the tick can act on, in time (id) priority; collected
        # before any await, since fills take orders out of the book as they go.
        acting = book.acting(tick, self._clock_tolerance)
        if not acting:
            return
        spec = (await self._catalog.get_many([tick.symbol])).get(tick.symbol)
        if not _trades(spec, tick.time):
            return  # a halted or closed symbol's orders rest untouched until it trades
        assert spec is not None
        available = tick.volume if self._partial_fills else None
        for first in range(0, len(acting), MAX_BATCH_ORDERS):
            chunk = acting[first : first + MAX_BATCH_ORDERS]
            available = await self._match_batch(book, chunk, tick, spec, available)

    async def _match_batch(
        self,
        book: OrderBook,
        acting: list[RestingOrder],
        tick: Tick,
        spec: SymbolSpec,
        available: Decimal | None,
    ) -> Decimal | None:
        """Decide and commit what ``tick`` does to ``acting`` in one transaction;
        returns the tick volume left. The book changes only once it committed."""
        batch, (left, settled) = await self._in_batch(
            [order.id for order in acting],
            spec.currency,
            lambda batch: self._decide(batch, book, acting, tick, spec, available),
        )
        for _ in range(batch.trade_count):
            self._activity.fill_committed(self._progress)
        for order, change in settled:
            if change is None or not change.is_open:
                self._forget(order)
            else:
                book.restate(order, change.remaining, change.version)
        return left

    async def _in_batch(
        self, order_ids: list[int], currency: str | None, decide: Callable[[FillBatch], _T]
    ) -> tuple[FillBatch, _T]:
        """Load a :class:`FillBatch` of ``order_ids``, let ``decide`` act on it (no I/O),
        write it with its announcements, and commit.

        If the fence trips at write time (:class:`StaleBatchError`), the batch is
        rolled back and decided again from a fresh locked read, where the moved
        order is stale and skipped while the others apply.
        """
        for attempt in range(1, STALE_BATCH_RETRIES + 1):
            try:
                async with self._sessions() as session:
                    batch = await FillBatch.load(
                        session,
                        order_ids,
                        currency=currency,
                        commission_rate=self._risk_policy.commission_rate,
                        allow_short=self._risk_policy.allow_short_selling,
                    )
                    decided = decide(batch)
                    await batch.write(session)
                    await self._orders.announce_many(session, batch.changes)
                    await self._orders.announce_fills(session, batch.fills)
                    await session.commit()
                return batch, decided
            except StaleBatchError:
                if attempt == STALE_BATCH_RETRIES:
                    raise
                log.info("fill batch fenced off; deciding it again", attempt=attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _decide(
        self,
        batch: FillBatch,
        book: OrderBook,
        acting: list[RestingOrder],
        tick: Tick,
        spec: SymbolSpec,
        available: Decimal | None,
    ) -> tuple[Decimal | None, list[tuple[RestingOrder, OrderChange | None]]]:
        """What the tick does to each acting order, in time priority (no I/O).

        Returns the volume left and, per order touched, its committed-to-be state
        (None: stale, the database is the truth: forget it).
        """
        settled: list[tuple[RestingOrder, OrderChange | None]] = []
        for order in acting:
            if book.get(order.id) is not order:
                # closed meanwhile (the expiry pass runs between our awaits), or
                # replaced by an amendment: this copy's version is stale
                continue
            if tick.time < order.created_at - self._clock_tolerance:
                continue  # a price from before the order existed; not even an IOC's or FOK's
            if order.expires_at is not None and tick.time >= order.expires_at:
                closed = batch.close(
                    order_id=order.id, expected_version=order.version, status=OrderStatus.EXPIRED
                )
                settled.append((order, closed))
                continue
            if order.waiting_for_stop:
                continue  # a stop this tick did not trigger acts only on its expiry
            price = order.fill_price(tick)
            quantity = order.remaining
            if price is not None and available is not None:
                lots = (min(quantity, available) // spec.lot_size) * spec.lot_size
                quantity = lots
            all_or_none = order.time_in_force is TimeInForce.FOK
            if all_or_none and quantity < order.remaining:
                quantity = Decimal(0)  # the tick cannot fill all of it: kill, consume nothing
            version: int | None = order.version
            if price is not None and quantity > 0:
                result = batch.fill(
                    order_id=order.id,
                    expected_version=order.version,
                    quantity=quantity,
                    price=price,
                    tick_time=tick.time,
                    lot_size=spec.lot_size,
                    all_or_none=all_or_none,
                )
                settled.append((order, result.order if result is not None else None))
                version = result.order.version if result and result.order.is_open else None
                if available is not None and result is not None:
                    available -= result.filled
            if order.time_in_force in IMMEDIATE_TIME_IN_FORCE and version is not None:
                closed = batch.close(
                    order_id=order.id, expected_version=version, status=OrderStatus.EXPIRED
                )
                settled.append((order, closed))
        return available, settled

    async def expire_day_orders(self, now: datetime) -> None:
        """Close every order whose ``expires_at`` has passed: read from each book's
        expiry heap, so the pass costs the orders due, not the whole book."""
        due = [order for book in list(self._books.values()) for order in book.due(now)]
        for first in range(0, len(due), MAX_BATCH_ORDERS):
            await self._expire_batch(due[first : first + MAX_BATCH_ORDERS])

    async def _expire_batch(self, due: list[RestingOrder]) -> None:
        """Expire ``due`` in one transaction (a session close can expire thousands)."""

        def decide(batch: FillBatch) -> list[RestingOrder]:
            held = [order for order in due if self._holds(order)]
            for order in held:
                batch.close(
                    order_id=order.id, expected_version=order.version, status=OrderStatus.EXPIRED
                )
            return held

        _, closed = await self._in_batch([order.id for order in due], None, decide)
        for order in closed:
            self._forget(order)  # expired now, or moved on: the database is the truth

    async def _trades_at(self, symbol: str, time: datetime) -> bool:
        spec = (await self._catalog.get_many([symbol])).get(symbol)
        return _trades(spec, time)

    async def _trigger(self, order: RestingOrder, tick: Tick) -> None:
        """Record that ``tick`` triggered a stop, then book it as the order it now is."""
        async with self._sessions() as session:
            row = await trigger_order(
                session, order_id=order.id, expected_version=order.version, at=tick.time
            )
            if row is not None:
                self._orders.announce(session, row)
            await session.commit()
        if row is None:
            self._forget(order)  # canceled or amended meanwhile: the database is the truth
            return
        if self._holds(order):
            self.book_order(replace(order, triggered=True, version=row.version))

    def _holds(self, order: RestingOrder) -> bool:
        book = self._books.get(order.symbol)
        return book is not None and book.get(order.id) is order

    def _forget(self, order: RestingOrder) -> None:
        """Drop ``order`` from its book, unless an amendment has booked a newer copy."""
        book = self._books.get(order.symbol)
        if book is not None and book.get(order.id) is order:
            book.discard(order.id)


def _trades(spec: SymbolSpec | None, time: datetime) -> bool:
    """Whether a tick of this symbol stamped ``time`` may fill or trigger orders."""
    return spec is not None and spec.tradable and spec.session.is_open(time)
