"""One symbol's open orders, indexed so a tick finds the orders it acts on.

The matcher used to sort every resting order of a symbol on every tick and
test each one; a book of 100,000 orders far from the market then cost 52 ms a
tick. :class:`OrderBook` keeps the same orders in the shapes a tick asks
about, so the work per tick is proportional to the orders that act on it:

- **bids**: resting LIMIT BUY orders in price levels, best (highest) first;
- **asks**: resting LIMIT SELL orders in price levels, best (lowest) first;
  a tick crosses a prefix of the levels on each side (a buy at ``ask <= limit``,
  a sell at ``bid >= limit``): the best price alone says whether it crosses any
  (O(1)), and the crossed levels are found in O(log levels) and walked level
  by level; levels beyond the tick's price are never visited;
- **immediate**: MARKET, IOC and FOK orders, which act on their next eligible
  tick whether they cross or not (MARKET fills at any price; IOC expires what
  does not fill; FOK fills all or expires all), so they are never in a level;
- **stops**: STOP and STOP_LIMIT orders waiting for their trigger, by stop
  price per side (:meth:`OrderBook.triggered_by`); once a tick's last price
  reaches a stop, the matcher records the trigger and books the order again,
  now acting as a MARKET order (immediate) or a LIMIT one (in its level);
- **expiries**: a binary heap keyed by ``expires_at`` holding every order that has
  an expiry (DAY, GTD), for the once-a-second expiry pass and for the tick that reaches an
  order's ``expires_at`` (it closes the order instead of filling it).

Removing an order drops it from its level at once but leaves its heap entry
behind (lazy deletion): an entry counts only while the book still holds that
very order object. Forgotten entries are popped when they reach the top, and
the heap is rebuilt from the live orders when they outnumber them, so it
stays within twice the live size (plus a small slack) however many orders
come and go before their expiry.

- **fingerprints**: per bucket of :data:`FINGERPRINT_BUCKET` consecutive ids, the
  count, id sum and version sum of the orders booked there (and their totals),
  kept as orders come, go and are partly filled (:meth:`OrderBook.restate`). The
  matcher's periodic check compares them with the database's, bucket by bucket,
  and reads order by order only the buckets that differ.

Which orders a tick acts on (:meth:`OrderBook.acting`) is exactly the set the
old scan did something to, in the same order (time priority across both sides:
global, and with partial fills the tick's volume is shared in that order).
Time priority is ascending id, except that an amendment which changes the
price or raises the quantity sends the order to the back of its queue
(:attr:`RestingOrder.priority`), as exchanges do; the amended order is booked
again under its id, replacing the old copy. The book holds no locks, does no
I/O and knows nothing of the database: the matcher decides what each acting
order does.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sortedcontainers import SortedList

from graphql_api.trading.order_types import (
    IMMEDIATE_TIME_IN_FORCE,
    LIMIT_TYPES,
    STOP_TYPES,
    OrderSide,
    OrderType,
    TimeInForce,
)
from storage import models
from storage.timeseries import Tick

# Consecutive ids fingerprinted together. An order in flight (committed, its event
# not yet heard) makes one bucket differ for a moment, and the check then reads at
# most this many (id, version) pairs instead of the whole book: with 100,000
# resting orders that whole read, every five seconds, held the event loop for
# about two seconds and set off full garbage collections of 150 ms.
FINGERPRINT_BUCKET = 1024

# Below this many forgotten heap entries the heap is never rebuilt: rebuilding
# a tiny heap to save a few entries costs more than it saves.
_EXPIRY_SLACK = 64


@dataclass(slots=True)
class RestingOrder:
    id: int
    symbol: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    limit_price: Decimal | None
    remaining: Decimal
    version: int
    expires_at: datetime | None
    # When the order entered the book: no tick stamped before it may fill it.
    created_at: datetime
    # Where an amendment sent it: behind the order with this id (see ``priority``).
    queue_anchor: int | None = None
    queued_at: datetime | None = None
    # STOP / STOP_LIMIT: the trigger, and whether a tick has reached it (then the
    # order acts as MARKET / LIMIT).
    stop_price: Decimal | None = None
    triggered: bool = False
    # Time priority, smallest first: (id, 0, id) for an order never sent to the
    # back of its queue; (anchor, microseconds of queued_at, id) after an
    # amendment, i.e. behind every order that existed when it was amended and
    # ahead of every later one. Fixed for the object's life: an amendment books
    # a new object.
    priority: tuple[int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.queue_anchor is None or self.queued_at is None:
            self.priority = (self.id, 0, self.id)
        else:
            self.priority = (self.queue_anchor, _micros(self.queued_at), self.id)

    @classmethod
    def from_row(cls, row: models.Order) -> RestingOrder:
        return cls(
            id=row.id,
            symbol=row.symbol_code,
            side=OrderSide(row.side),
            type=OrderType(row.type),
            time_in_force=TimeInForce(row.time_in_force),
            limit_price=row.limit_price,
            remaining=row.quantity - row.filled_quantity,
            version=row.version,
            expires_at=row.expires_at,
            created_at=row.created_at,
            queue_anchor=row.queue_anchor,
            queued_at=row.queued_at,
            stop_price=row.stop_price,
            triggered=row.triggered_at is not None,
        )

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> RestingOrder:
        """From ``encode_new_order``: booking a new order costs no query."""
        return cls(
            id=int(event["id"]),
            symbol=str(event["symbol"]),
            side=OrderSide(event["side"]),
            type=OrderType(event["type"]),
            time_in_force=TimeInForce(event["timeInForce"]),
            limit_price=Decimal(event["limitPrice"]) if event["limitPrice"] else None,
            remaining=Decimal(event["remaining"]),
            version=int(event["version"]),
            expires_at=datetime.fromisoformat(event["expiresAt"]) if event["expiresAt"] else None,
            # An event from an older process has no createdAt: receiving it is
            # later than the creation, so the rule only gets stricter.
            created_at=(
                datetime.fromisoformat(event["createdAt"])
                if event.get("createdAt")
                else datetime.now(UTC)
            ),
            queue_anchor=event.get("queueAnchor"),
            queued_at=(
                datetime.fromisoformat(event["queuedAt"]) if event.get("queuedAt") else None
            ),
            stop_price=Decimal(event["stopPrice"]) if event.get("stopPrice") else None,
            triggered=bool(event.get("triggered")),
        )

    @property
    def waiting_for_stop(self) -> bool:
        """A STOP or STOP_LIMIT order no tick has triggered yet: it cannot fill."""
        return self.type in STOP_TYPES and not self.triggered

    def stop_reached(self, tick: Tick) -> bool:
        """Whether the tick's last price triggers this stop (buy: at or above the
        stop price, sell: at or below it)."""
        assert self.stop_price is not None
        if self.side is OrderSide.BUY:
            return tick.last >= self.stop_price
        return tick.last <= self.stop_price

    def fill_price(self, tick: Tick) -> Decimal | None:
        """The price this tick would fill at, or None if it does not cross (or the
        order is a stop still waiting for its trigger)."""
        if self.waiting_for_stop:
            return None
        price = buy_price(tick) if self.side is OrderSide.BUY else sell_price(tick)
        if self.type in (OrderType.MARKET, OrderType.STOP):
            return price
        assert self.limit_price is not None
        crosses = (
            price <= self.limit_price if self.side is OrderSide.BUY else price >= self.limit_price
        )
        return price if crosses else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(time: datetime) -> int:
    """Exact microseconds since the epoch (a float timestamp would round them)."""
    aware = time if time.tzinfo is not None else time.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def buy_price(tick: Tick) -> Decimal:
    """What a BUY pays on this tick: the ask, or the last price when there is no ask."""
    return tick.ask if tick.ask > 0 else tick.last


def sell_price(tick: Tick) -> Decimal:
    """What a SELL gets on this tick: the bid, or the last price when there is no bid."""
    return tick.bid if tick.bid > 0 else tick.last


def _in_levels(order: RestingOrder) -> bool:
    """Whether the order waits for a price (rather than acting on its next tick)."""
    return (
        order.type in LIMIT_TYPES
        and not order.waiting_for_stop
        and order.time_in_force not in IMMEDIATE_TIME_IN_FORCE
        and order.limit_price is not None
    )


class OrderBook:
    """The open orders of one symbol, by price level, immediacy and expiry."""

    def __init__(self) -> None:
        self._orders: dict[int, RestingOrder] = {}
        # Each side: its level prices in order, and price -> {id: order}. A
        # SortedList beside a dict rather than a SortedDict: reading the best
        # price is then one index, which every tick does on both sides.
        # (sortedcontainers ships no type hints, hence Any.)
        self._bid_prices: Any = SortedList()
        self._bids: dict[Decimal, dict[int, RestingOrder]] = {}
        self._ask_prices: Any = SortedList()
        self._asks: dict[Decimal, dict[int, RestingOrder]] = {}
        # The best prices, kept as levels come and go: a tick that crosses
        # nothing is told so by two comparisons.
        self._best_bid: Decimal | None = None
        self._best_ask: Decimal | None = None
        self._immediate: dict[int, RestingOrder] = {}
        # Stops waiting for their trigger, by stop price: a buy stop triggers at a last
        # price at or above its stop (the lowest stop goes first), a sell stop at or
        # below it (the highest first).
        self._buy_stop_prices: Any = SortedList()
        self._buy_stops: dict[Decimal, dict[int, RestingOrder]] = {}
        self._sell_stop_prices: Any = SortedList()
        self._sell_stops: dict[Decimal, dict[int, RestingOrder]] = {}
        # (expires_at, sequence, order): the sequence breaks ties without ever
        # comparing orders, even when an id is booked again at the same expiry.
        self._expiries: list[tuple[datetime, int, RestingOrder]] = []
        self._sequence = itertools.count()
        self._forgotten_expiries = 0
        # bucket (id // FINGERPRINT_BUCKET) -> [count, id sum, version sum], and totals
        self._buckets: dict[int, list[int]] = {}
        self._totals = [0, 0, 0]

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get(self, order_id: int) -> RestingOrder | None:
        return self._orders.get(order_id)

    def fingerprint(self) -> tuple[int, int, int]:
        """(count, sum of ids, sum of versions): compared with the database's
        (:func:`storage.repositories.accounts.open_order_fingerprints`)."""
        count, id_sum, version_sum = self._totals
        return count, id_sum, version_sum

    def bucket_fingerprints(self) -> dict[int, tuple[int, int, int]]:
        """:meth:`fingerprint` per bucket of ids (``id // FINGERPRINT_BUCKET``) that holds
        an order (:func:`storage.repositories.accounts.open_order_bucket_fingerprints`)."""
        return {bucket: (sums[0], sums[1], sums[2]) for bucket, sums in self._buckets.items()}

    def versions_in(self, bucket: int) -> dict[int, int]:
        """The version of each order booked in ``bucket``, by id."""
        first = bucket * FINGERPRINT_BUCKET
        orders = self._orders
        return {
            order_id: order.version
            for order_id in range(first, first + FINGERPRINT_BUCKET)
            if (order := orders.get(order_id)) is not None
        }

    def restate(self, order: RestingOrder, remaining: Decimal, version: int) -> None:
        """A partial fill moved ``order`` on: its remaining quantity and version, set
        here so the fingerprints follow (an order no longer booked just changes)."""
        booked = self._orders.get(order.id) is order
        if booked:
            self._tally(order, -1)
        order.remaining = remaining
        order.version = version
        if booked:
            self._tally(order, 1)

    def orders(self) -> list[RestingOrder]:
        """Every order in the book, by id."""
        return sorted(self._orders.values(), key=_by_id)

    def add(self, order: RestingOrder) -> None:
        """Book ``order``; one already booked under its id is replaced."""
        self.discard(order.id)
        self._orders[order.id] = order
        self._tally(order, 1)
        if order.waiting_for_stop:
            prices, stops = self._stops_of(order.side)
            waiting = stops.get(_stop(order))
            if waiting is None:
                waiting = stops[_stop(order)] = {}
                prices.add(_stop(order))
            waiting[order.id] = order
        elif order.limit_price is not None and _in_levels(order):
            buy = order.side is OrderSide.BUY
            side = self._bids if buy else self._asks
            level = side.get(order.limit_price)
            if level is None:
                level = side[order.limit_price] = {}
                (self._bid_prices if buy else self._ask_prices).add(order.limit_price)
                self._set_best()
            level[order.id] = order
        else:
            self._immediate[order.id] = order
        if order.expires_at is not None:
            heapq.heappush(self._expiries, (order.expires_at, next(self._sequence), order))

    def discard(self, order_id: int) -> RestingOrder | None:
        """Take the order with this id out of the book (if it is there) and return it."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        self._tally(order, -1)
        if order.waiting_for_stop:
            prices, stops = self._stops_of(order.side)
            waiting = stops[_stop(order)]
            del waiting[order_id]
            if not waiting:
                del stops[_stop(order)]
                prices.remove(_stop(order))
        elif order.limit_price is not None and _in_levels(order):
            buy = order.side is OrderSide.BUY
            side = self._bids if buy else self._asks
            level = side[order.limit_price]
            del level[order_id]
            if not level:
                del side[order.limit_price]
                (self._bid_prices if buy else self._ask_prices).remove(order.limit_price)
                self._set_best()
        else:
            del self._immediate[order_id]
        if order.expires_at is not None:
            self._forget_expiry()
        return order

    def bids(self) -> Iterator[tuple[Decimal, list[RestingOrder]]]:
        """Price levels of the LIMIT buys, best (highest) first, each in time priority."""
        for price in reversed(self._bid_prices):
            yield price, sorted(self._bids[price].values(), key=_by_priority)

    def asks(self) -> Iterator[tuple[Decimal, list[RestingOrder]]]:
        """Price levels of the LIMIT sells, best (lowest) first, each in time priority."""
        for price in self._ask_prices:
            yield price, sorted(self._asks[price].values(), key=_by_priority)

    def acting(self, tick: Tick, clock_tolerance: timedelta) -> list[RestingOrder]:
        """The orders ``tick`` acts on, in the order the matcher must process them (time
        priority: by id, with amended orders where their amendment queued them).

        That is every order the tick may touch (stamped no earlier than the order's
        creation less ``clock_tolerance``) that it expires (``expires_at <= tick.time``),
        that acts on any tick (MARKET, IOC), or whose limit it crosses. An order skipped
        for being younger than the tick is passed over, never a reason to stop looking.
        """
        buy, sell = buy_price(tick), sell_price(tick)
        best_bid, best_ask = self._best_bid, self._best_ask
        crosses_bids = best_bid is not None and best_bid >= buy
        crosses_asks = best_ask is not None and best_ask <= sell
        expiries = self._expiries
        reaches_expiry = bool(expiries) and expiries[0][0] <= tick.time
        if not (crosses_bids or crosses_asks or reaches_expiry or self._immediate):
            return []  # most ticks: nothing crossed, nothing due, nothing waiting
        # created_at - tolerance <= tick.time  <=>  created_at <= tick.time + tolerance
        newest = tick.time + clock_tolerance
        found: dict[int, RestingOrder] = {}
        prices = self._bid_prices
        if crosses_bids:
            for price in prices.irange(minimum=buy, reverse=True):
                for order in self._bids[price].values():
                    if order.created_at <= newest:
                        found[order.id] = order
        prices = self._ask_prices
        if crosses_asks:
            for price in prices.irange(maximum=sell):
                for order in self._asks[price].values():
                    if order.created_at <= newest:
                        found[order.id] = order
        for order in self._immediate.values():
            if order.created_at <= newest:
                found[order.id] = order
        if reaches_expiry:
            for order in self.due(tick.time):
                if order.created_at <= newest:
                    found[order.id] = order
        if len(found) < 2:
            return list(found.values())
        return sorted(found.values(), key=_by_priority)

    def triggered_by(self, tick: Tick, clock_tolerance: timedelta) -> list[RestingOrder]:
        """The waiting stops whose trigger ``tick``'s last price reaches, in time
        priority, among those the tick may touch (as for :meth:`acting`).

        O(1) when it reaches none (the lowest buy stop and the highest sell stop
        tell); otherwise the stop levels reached are walked, never the others.
        """
        last = tick.last
        buys, sells = self._buy_stop_prices, self._sell_stop_prices
        reaches_buys = bool(buys) and buys[0] <= last
        reaches_sells = bool(sells) and sells[-1] >= last
        if not (reaches_buys or reaches_sells):
            return []
        newest = tick.time + clock_tolerance
        found: list[RestingOrder] = []
        if reaches_buys:
            for price in buys.irange(maximum=last):
                found += (o for o in self._buy_stops[price].values() if o.created_at <= newest)
        if reaches_sells:
            for price in sells.irange(minimum=last):
                found += (o for o in self._sell_stops[price].values() if o.created_at <= newest)
        found.sort(key=_by_priority)
        return found

    def due(self, now: datetime) -> list[RestingOrder]:
        """The orders whose ``expires_at`` is at or before ``now``, by id.

        Reads the heap without popping live entries: an order stays in it until it
        leaves the book, so a caller that is interrupted loses nothing.
        """
        heap = self._expiries
        orders = self._orders
        # Forgotten entries on top would otherwise be walked again on every tick.
        while heap and orders.get(heap[0][2].id) is not heap[0][2]:
            heapq.heappop(heap)
            self._forgotten_expiries -= 1
        if not heap or heap[0][0] > now:
            return []
        # The entries at or before ``now`` form a subtree under the root of the
        # heap: a walk that stops at later entries visits only them (and their
        # children), O(due) instead of O(book).
        found: list[RestingOrder] = []
        pending = [0]
        size = len(heap)
        while pending:
            index = pending.pop()
            order = heap[index][2]
            if orders.get(order.id) is order:
                found.append(order)
            for child in (2 * index + 1, 2 * index + 2):
                if child < size and heap[child][0] <= now:
                    pending.append(child)
        found.sort(key=_by_id)
        return found

    @property
    def expiry_entries(self) -> int:
        """Heap entries, forgotten ones included (at most twice the live ones, plus slack)."""
        return len(self._expiries)

    def _tally(self, order: RestingOrder, sign: int) -> None:
        """Count ``order`` into (``sign`` 1) or out of (-1) its bucket and the totals."""
        bucket = order.id // FINGERPRINT_BUCKET
        sums = self._buckets.get(bucket)
        if sums is None:
            sums = self._buckets[bucket] = [0, 0, 0]
        for kept in (sums, self._totals):
            kept[0] += sign
            kept[1] += sign * order.id
            kept[2] += sign * order.version
        if sums[0] == 0:
            del self._buckets[bucket]

    def _stops_of(self, side: OrderSide) -> tuple[Any, dict[Decimal, dict[int, RestingOrder]]]:
        if side is OrderSide.BUY:
            return self._buy_stop_prices, self._buy_stops
        return self._sell_stop_prices, self._sell_stops

    def _set_best(self) -> None:
        self._best_bid = self._bid_prices[-1] if self._bid_prices else None
        self._best_ask = self._ask_prices[0] if self._ask_prices else None

    def _forget_expiry(self) -> None:
        self._forgotten_expiries += 1
        if self._forgotten_expiries > max(_EXPIRY_SLACK, len(self._expiries) // 2):
            orders = self._orders
            self._expiries = [e for e in self._expiries if orders.get(e[2].id) is e[2]]
            heapq.heapify(self._expiries)
            self._forgotten_expiries = 0


def _by_id(order: RestingOrder) -> int:
    return order.id


def _by_priority(order: RestingOrder) -> tuple[int, int, int]:
    return order.priority


def _stop(order: RestingOrder) -> Decimal:
    assert order.stop_price is not None
    return order.stop_price
