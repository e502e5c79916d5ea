"""The order book: price levels, the expiry heap, and which orders a tick acts on.

The property test holds the book against the matcher's former logic, kept here
as the reference: sort every resting order by id and let each one decide
whether the tick does something to it. For random sequences of orders,
cancels, re-bookings, ticks and expiry passes, both must name the same orders
in the same order and, processed the way the matcher processes them (fills
sharing the tick's volume in id order, IOC and expiry closes), leave the same
fills and the same book.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api.realtime.events import decode_id_event, encode_new_order
from graphql_api.trading.book import FINGERPRINT_BUCKET, OrderBook, RestingOrder
from graphql_api.trading.order_types import (
    IMMEDIATE_TIME_IN_FORCE,
    OrderSide,
    OrderType,
    TimeInForce,
)
from storage import models
from storage.timeseries import Tick

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
LOT = Decimal(100)


def order(
    order_id: int,
    side: OrderSide = OrderSide.BUY,
    limit: str | None = "10.00",
    *,
    type: OrderType | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    remaining: str = "100",
    created_ms: int = 0,
    expires_ms: int | None = None,
    stop: str | None = None,
) -> RestingOrder:
    return RestingOrder(
        id=order_id,
        symbol="000001.SZ",
        side=side,
        type=type or (OrderType.MARKET if limit is None else OrderType.LIMIT),
        time_in_force=tif,
        limit_price=None if limit is None else Decimal(limit),
        remaining=Decimal(remaining),
        version=0,
        expires_at=None if expires_ms is None else T0 + timedelta(milliseconds=expires_ms),
        created_at=T0 + timedelta(milliseconds=created_ms),
        stop_price=None if stop is None else Decimal(stop),
    )


def tick(bid: str, ask: str, *, last: str | None = None, ms: int = 10, volume: str = "0") -> Tick:
    return Tick(
        "000001.SZ",
        T0 + timedelta(milliseconds=ms),
        Decimal(last if last is not None else bid),
        Decimal(bid),
        Decimal(ask),
        Decimal(volume),
    )


def book_of(orders: Iterable[RestingOrder]) -> OrderBook:
    book = OrderBook()
    for each in orders:
        book.add(each)
    return book


def ids(orders: Iterable[RestingOrder]) -> list[int]:
    return [each.id for each in orders]


def levels(
    book_levels: Iterable[tuple[Decimal, list[RestingOrder]]],
) -> list[tuple[str, list[int]]]:
    return [(str(price), ids(orders)) for price, orders in book_levels]


# --- price levels -------------------------------------------------------------


def test_bids_are_best_price_first_then_time_and_asks_likewise() -> None:
    book = book_of(
        [
            order(5, OrderSide.BUY, "10.00"),
            order(2, OrderSide.BUY, "10.00"),
            order(3, OrderSide.BUY, "10.50"),
            order(4, OrderSide.BUY, "9.00"),
            order(9, OrderSide.SELL, "11.00"),
            order(7, OrderSide.SELL, "10.80"),
            order(8, OrderSide.SELL, "11.00"),
        ]
    )
    assert levels(book.bids()) == [("10.50", [3]), ("10.00", [2, 5]), ("9.00", [4])]
    assert levels(book.asks()) == [("10.80", [7]), ("11.00", [8, 9])]


def test_equal_prices_written_differently_share_a_level_and_an_empty_level_goes() -> None:
    book = book_of([order(1, limit="10.0"), order(2, limit="10.00")])
    assert [len(orders) for _, orders in book.bids()] == [2]
    book.discard(1)
    book.discard(2)
    assert list(book.bids()) == []
    assert len(book) == 0


def test_market_ioc_and_fok_orders_wait_in_no_level() -> None:
    book = book_of(
        [
            order(1, limit=None),
            order(2, limit="10.00", tif=TimeInForce.IOC),
            order(3),
            order(4, limit="10.00", tif=TimeInForce.FOK),
            order(5, limit="10.00", tif=TimeInForce.GTD, expires_ms=1_000),
        ]
    )
    assert levels(book.bids()) == [("10.00", [3, 5])]
    assert ids(book.orders()) == [1, 2, 3, 4, 5]
    # the immediate ones act on a tick that crosses nothing; the resting ones do not
    assert ids(book.acting(tick("1.00", "11.00"), timedelta(0))) == [1, 2, 4]


def test_booking_an_id_again_replaces_the_order() -> None:
    book = book_of([order(1, limit="10.00")])
    book.add(order(1, limit="9.00"))
    assert levels(book.bids()) == [("9.00", [1])]
    assert len(book) == 1


def test_an_amended_order_sent_to_the_back_ranks_after_every_older_order() -> None:
    book = book_of([order(1), order(2), order(3), order(4, OrderSide.SELL, "10.00")])
    # order 1 amended (a new quantity) when 4 was the newest order
    book.add(dataclasses.replace(order(1, remaining="200"), queue_anchor=4, queued_at=T0))
    # and order 2 a moment later, at the same anchor
    book.add(
        dataclasses.replace(
            order(2, remaining="200"), queue_anchor=4, queued_at=T0 + timedelta(milliseconds=1)
        )
    )
    book.add(order(5))  # placed after both amendments
    assert levels(book.bids()) == [("10.00", [3, 1, 2, 5])]
    # a tick crossing both sides processes them in that same priority
    assert ids(book.acting(tick("10.00", "10.00"), timedelta(0))) == [3, 4, 1, 2, 5]


def test_a_stop_waits_in_no_level_until_the_last_price_reaches_it() -> None:
    book = book_of(
        [
            order(1, OrderSide.BUY, None, type=OrderType.STOP, stop="10.50"),
            order(2, OrderSide.BUY, "10.60", type=OrderType.STOP_LIMIT, stop="10.40"),
            order(3, OrderSide.SELL, None, type=OrderType.STOP, stop="9.50"),
            order(4, OrderSide.SELL, "9.40", type=OrderType.STOP_LIMIT, stop="9.60"),
        ]
    )
    # waiting stops are in no level and no tick acts on them
    assert (list(book.bids()), list(book.asks())) == ([], [])
    assert book.acting(tick("10.00", "10.01"), timedelta(0)) == []
    # a last price inside the stops triggers none
    assert book.triggered_by(tick("10.00", "10.01", last="10.00"), timedelta(0)) == []
    # buys trigger at or above their stop, sells at or below, whatever the bid and ask
    assert ids(book.triggered_by(tick("0", "0", last="10.40"), timedelta(0))) == [2]
    assert ids(book.triggered_by(tick("0", "0", last="11.00"), timedelta(0))) == [1, 2]
    assert ids(book.triggered_by(tick("0", "0", last="9.60"), timedelta(0))) == [4]
    assert ids(book.triggered_by(tick("0", "0", last="9.00"), timedelta(0))) == [3, 4]
    # once triggered, a stop limit rests in its level and a stop acts on any tick
    for each in book.triggered_by(tick("0", "0", last="11.00"), timedelta(0)):
        book.add(dataclasses.replace(each, triggered=True))
    assert levels(book.bids()) == [("10.60", [2])]
    assert ids(book.acting(tick("1.00", "20.00"), timedelta(0))) == [1]
    book.discard(2)
    book.discard(3)
    assert ids(book.triggered_by(tick("0", "0", last="9.00"), timedelta(0))) == [4]


# --- which orders a tick acts on ------------------------------------------------


def test_a_tick_that_crosses_nothing_acts_on_nothing() -> None:
    book = book_of(
        [order(i, OrderSide.BUY, str(9 - i / 100)) for i in range(1, 50)]
        + [order(i, OrderSide.SELL, str(11 + i / 100)) for i in range(50, 100)]
    )
    assert book.acting(tick("10.00", "10.01"), timedelta(0)) == []


def test_a_tick_acts_on_the_crossed_levels_in_id_order_across_both_sides() -> None:
    book = book_of(
        [
            order(1, OrderSide.BUY, "10.00"),
            order(2, OrderSide.SELL, "10.05"),
            order(3, OrderSide.BUY, "10.02"),
            order(4, OrderSide.SELL, "9.98"),
            order(5, OrderSide.BUY, "10.01"),  # the ask itself: crosses
            order(6, OrderSide.SELL, "10.00"),  # the bid itself: crosses
        ]
    )
    # buys cross at ask <= limit, sells at bid >= limit
    assert ids(book.acting(tick("10.00", "10.01"), timedelta(0))) == [3, 4, 5, 6]


def test_without_a_bid_or_ask_the_last_price_is_the_crossing_price() -> None:
    book = book_of([order(1, OrderSide.BUY, "10.00"), order(2, OrderSide.SELL, "10.00")])
    assert ids(book.acting(tick("0", "0", last="10.00"), timedelta(0))) == [1, 2]
    assert ids(book.acting(tick("0", "0", last="10.50"), timedelta(0))) == [2]


def test_an_order_younger_than_the_tick_is_passed_over_not_a_reason_to_stop() -> None:
    # given a crossed level whose first order was created after the tick
    book = book_of(
        [
            order(1, OrderSide.BUY, "10.50", created_ms=1_000),
            order(2, OrderSide.BUY, "10.50"),
            order(3, OrderSide.BUY, "10.20"),
            order(4, OrderSide.BUY, "10.20", created_ms=1_000),
        ]
    )
    # then the older orders of that level and of the next one still act
    assert ids(book.acting(tick("10.00", "10.10", ms=10), timedelta(0))) == [2, 3]
    # and the clock tolerance admits the young ones
    assert ids(book.acting(tick("10.00", "10.10", ms=10), timedelta(seconds=1))) == [1, 2, 3, 4]


def test_market_and_ioc_orders_act_on_any_tick_after_their_creation() -> None:
    book = book_of(
        [
            order(1, OrderSide.SELL, limit=None),
            order(2, OrderSide.BUY, "1.00", tif=TimeInForce.IOC),
            order(3, OrderSide.BUY, "1.00"),
            order(4, OrderSide.BUY, limit=None, created_ms=1_000),
        ]
    )
    assert ids(book.acting(tick("10.00", "10.01"), timedelta(0))) == [1, 2]


def test_a_tick_at_or_after_an_expiry_acts_on_the_order_even_far_from_the_market() -> None:
    book = book_of(
        [
            order(1, OrderSide.BUY, "1.00", tif=TimeInForce.DAY, expires_ms=10),
            order(2, OrderSide.BUY, "1.00", tif=TimeInForce.DAY, expires_ms=11),
            order(3, OrderSide.SELL, "99.00", tif=TimeInForce.DAY, expires_ms=5),
        ]
    )
    assert ids(book.acting(tick("10.00", "10.01", ms=10), timedelta(0))) == [1, 3]


# --- the expiry heap ------------------------------------------------------------


def test_due_orders_come_from_the_heap_in_id_order_and_stay_until_discarded() -> None:
    book = book_of(
        [
            order(3, tif=TimeInForce.DAY, expires_ms=30),
            order(1, tif=TimeInForce.DAY, expires_ms=50),
            order(2, tif=TimeInForce.DAY, expires_ms=10),
            order(4),  # GTC: never due
        ]
    )
    now = T0 + timedelta(milliseconds=30)
    assert ids(book.due(now)) == [2, 3]
    # reading does not consume: a pass interrupted before it closed them loses nothing
    assert ids(book.due(now)) == [2, 3]
    book.discard(2)
    assert ids(book.due(now)) == [3]
    assert ids(book.due(T0 + timedelta(days=1))) == [1, 3]


def test_a_discarded_order_leaves_its_heap_entry_until_it_reaches_the_top() -> None:
    book = book_of([order(i, tif=TimeInForce.DAY, expires_ms=i) for i in range(1, 11)])
    book.discard(5)
    book.discard(1)
    # lazy deletion: nothing was taken out of the heap yet
    assert book.expiry_entries == 10
    assert book.due(T0) == []
    # the forgotten entry on top went when the heap was read; id 5 is still inside
    assert book.expiry_entries == 9
    assert ids(book.due(T0 + timedelta(milliseconds=6))) == [2, 3, 4, 6]


def test_booking_an_id_again_forgets_its_old_expiry() -> None:
    book = book_of([order(1, tif=TimeInForce.DAY, expires_ms=10)])
    book.add(order(1, tif=TimeInForce.DAY, expires_ms=10))  # the same expiry: no tie to break
    book.add(order(1, tif=TimeInForce.DAY, expires_ms=1_000))
    assert book.due(T0 + timedelta(milliseconds=500)) == []
    assert ids(book.due(T0 + timedelta(milliseconds=1_000))) == [1]


def test_the_heap_stays_within_twice_the_live_orders_however_many_come_and_go() -> None:
    book = OrderBook()
    for i in range(10_000):
        book.add(order(i, tif=TimeInForce.DAY, expires_ms=10_000 + i % 7))
        if i % 10:
            book.discard(i)  # filled or canceled long before the session closes
    assert len(book) == 1_000
    assert book.expiry_entries <= 2 * len(book) + 64
    assert len(book.due(T0 + timedelta(days=1))) == 1_000


# --- fingerprints: what the matcher's periodic check compares ------------------


def recounted(orders: Iterable[RestingOrder]) -> dict[int, tuple[int, int, int]]:
    """The fingerprints summed from scratch, per bucket of ids."""
    buckets: dict[int, tuple[int, int, int]] = {}
    for each in orders:
        count, id_sum, version_sum = buckets.get(each.id // FINGERPRINT_BUCKET, (0, 0, 0))
        buckets[each.id // FINGERPRINT_BUCKET] = (
            count + 1,
            id_sum + each.id,
            version_sum + each.version,
        )
    return buckets


fingerprint_steps_st = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "discard", "restate", "restate_gone"]),
        # ids in a few buckets, some shared, some apart
        st.integers(min_value=0, max_value=4 * FINGERPRINT_BUCKET),
        st.integers(min_value=0, max_value=9),  # a version
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(steps=fingerprint_steps_st)
def test_fingerprints_follow_every_add_discard_and_partial_fill(
    steps: list[tuple[str, int, int]],
) -> None:
    book = OrderBook()
    dropped: list[RestingOrder] = []
    for kind, order_id, version in steps:
        if kind == "add":  # a new order, or the same id booked again at another version
            book.add(dataclasses.replace(order(order_id), version=version))
        elif kind == "discard":
            gone = book.discard(order_id)
            if gone is not None:
                dropped.append(gone)
        elif kind == "restate" and (held := book.get(order_id)) is not None:
            book.restate(held, held.remaining - 1, held.version + version)
        elif kind == "restate_gone" and dropped:
            # a fill committed after the order left the book: it changes the object only
            stale = dropped[order_id % len(dropped)]
            book.restate(stale, stale.remaining - 1, stale.version + 1)
        orders = book.orders()
        buckets = recounted(orders)
        assert book.bucket_fingerprints() == buckets
        assert book.fingerprint() == (
            len(orders),
            sum(each.id for each in orders),
            sum(each.version for each in orders),
        )
        for bucket in buckets:
            assert book.versions_in(bucket) == {
                each.id: each.version for each in orders if each.id // FINGERPRINT_BUCKET == bucket
            }


# --- booked from a row or from the orders.new event: the same order ----------


def test_resync_and_the_new_order_event_book_the_same_order() -> None:
    row = models.Order(
        id=7,
        user_id=1,
        symbol_code="000001.SZ",
        side="SELL",
        type="STOP_LIMIT",
        time_in_force="DAY",
        quantity=Decimal("500"),
        filled_quantity=Decimal("200"),
        limit_price=Decimal("10.25"),
        status="PARTIALLY_FILLED",
        version=3,
        expires_at=T0 + timedelta(hours=5),
        created_at=T0,
        updated_at=T0,
        queue_anchor=12,
        queued_at=T0 + timedelta(minutes=1),
        stop_price=Decimal("10.20"),
        triggered_at=T0 + timedelta(minutes=2),
    )
    from_event = RestingOrder.from_event(decode_id_event(encode_new_order(row)))
    assert from_event == RestingOrder.from_row(row)
    assert from_event.priority == RestingOrder.from_row(row).priority
    assert from_event.priority[0] == 12
    assert (from_event.stop_price, from_event.triggered) == (Decimal("10.20"), True)


# --- the property: the book names what the old scan did -------------------------


def reference_acting(
    resting: dict[int, RestingOrder], tick: Tick, tolerance: timedelta
) -> list[RestingOrder]:
    """The former matcher: every resting order in time priority, each deciding for itself."""
    acting = []
    for each in by_priority(resting):
        if tick.time < each.created_at - tolerance:
            continue
        expired = each.expires_at is not None and tick.time >= each.expires_at
        immediate = each.time_in_force in IMMEDIATE_TIME_IN_FORCE and not each.waiting_for_stop
        if expired or immediate or each.fill_price(tick) is not None:
            acting.append(each)
    return acting


def by_priority(resting: dict[int, RestingOrder]) -> list[RestingOrder]:
    """Time priority, spelled out: by id, except that an order an amendment sent to
    the back ranks after the newest order at that moment (its anchor), and
    amendments to one anchor rank in the order they were made."""

    def key(each: RestingOrder) -> tuple[int, datetime, int]:
        if each.queue_anchor is None or each.queued_at is None:
            return (each.id, datetime.min.replace(tzinfo=UTC), each.id)
        return (each.queue_anchor, each.queued_at, each.id)

    return sorted(resting.values(), key=key)


def reference_triggered(
    resting: dict[int, RestingOrder], tick: Tick, tolerance: timedelta
) -> list[RestingOrder]:
    """Every waiting stop the tick's last price reaches, in priority, each deciding."""
    return [
        each
        for each in by_priority(resting)
        if each.waiting_for_stop
        and each.stop_reached(tick)
        and each.created_at <= tick.time + tolerance
    ]


def process(
    acting: list[RestingOrder],
    still_there: Any,
    forget: Any,
    tick: Tick,
    tolerance: timedelta,
    partial: bool,
) -> list[tuple[str, int, Decimal]]:
    """The matcher's per-order body with in-memory fills (every fill is written)."""
    events: list[tuple[str, int, Decimal]] = []
    available = tick.volume if partial else None
    for each in acting:
        if not still_there(each):
            continue
        if tick.time < each.created_at - tolerance:
            continue
        if each.expires_at is not None and tick.time >= each.expires_at:
            events.append(("expired", each.id, each.remaining))
            forget(each)
            continue
        if each.waiting_for_stop:
            continue  # only its expiry acts on a stop no tick has triggered
        price = each.fill_price(tick)
        quantity = each.remaining
        if price is not None and available is not None:
            quantity = (min(quantity, available) // LOT) * LOT
        if each.time_in_force is TimeInForce.FOK and quantity < each.remaining:
            quantity = Decimal(0)  # all or nothing: takes no volume
        if price is not None and quantity > 0:
            events.append(("filled", each.id, quantity))
            each.remaining -= quantity
            if available is not None:
                available -= quantity
            if each.remaining == 0:
                forget(each)
        if each.time_in_force in IMMEDIATE_TIME_IN_FORCE and still_there(each):
            events.append(("ioc-expired", each.id, each.remaining))
            forget(each)
    return events


prices = st.integers(min_value=97, max_value=103).map(lambda tenths: Decimal(tenths) / 10)
orders_st = st.fixed_dictionaries(
    {
        "kind": st.just("order"),
        "side": st.sampled_from(list(OrderSide)),
        "type": st.sampled_from(
            [
                OrderType.LIMIT,
                OrderType.LIMIT,
                OrderType.MARKET,
                OrderType.STOP,
                OrderType.STOP_LIMIT,
            ]
        ),
        "tif": st.sampled_from(list(TimeInForce)),
        "price": prices,
        "stop": prices,
        "lots": st.integers(min_value=1, max_value=5),
        # relative to the clock: some orders are younger than the next ticks
        "created_ms": st.sampled_from([-5, 0, 0, 3, 6, 50, 10_000]),
        # on the ticks' own offsets, so a tick often lands exactly on an expiry
        "expires_ms": st.sampled_from([None, None, None, -5, 0, 1, 2, 3, 5, 8, 20, 40]),
    }
)
ticks_st = st.fixed_dictionaries(
    {
        # a tick the book processes, or one it is only asked about (which leaves
        # the book as it is, so later probes meet fuller levels)
        "kind": st.sampled_from(["tick", "probe"]),
        "price": prices,
        "spread": st.integers(min_value=0, max_value=3),
        "no_quote": st.booleans(),
        "lots": st.integers(min_value=0, max_value=12),
        "ms": st.sampled_from([-10, 0, 1, 2, 5, 20]),
    }
)
others_st = st.one_of(
    st.fixed_dictionaries({"kind": st.just("cancel"), "pick": st.integers(0, 1_000)}),
    # an amendment: a smaller quantity keeps the place, a new price or a larger
    # quantity goes to the back (booked again under the same id)
    st.fixed_dictionaries(
        {
            "kind": st.just("amend"),
            "pick": st.integers(0, 1_000),
            "price": st.one_of(st.none(), prices),
            "lots": st.integers(min_value=-3, max_value=3),
        }
    ),
    st.fixed_dictionaries({"kind": st.just("rebook"), "pick": st.integers(0, 1_000)}),
    st.fixed_dictionaries({"kind": st.just("expire"), "ms": st.integers(-5, 30)}),
)
steps_st = st.lists(
    st.one_of(orders_st, orders_st, orders_st, ticks_st, ticks_st, others_st),
    min_size=20,
    max_size=100,
)


@settings(max_examples=200, deadline=None)
@given(
    steps=steps_st,
    partial=st.booleans(),
    tolerance_ms=st.sampled_from([0, 0, 4]),
)
def test_the_book_acts_on_what_the_old_scan_acted_on(
    steps: list[dict[str, Any]], partial: bool, tolerance_ms: int
) -> None:
    tolerance = timedelta(milliseconds=tolerance_ms)
    book = OrderBook()
    reference: dict[int, RestingOrder] = {}
    next_id = 1
    for clock, step in enumerate(steps, start=1):
        if step["kind"] == "order":
            kind = step["type"]
            market_like = kind in (OrderType.MARKET, OrderType.STOP)
            limit = None if market_like else str(step["price"])
            expires = step["expires_ms"]
            placed = order(
                next_id,
                step["side"],
                limit,
                type=kind,
                stop=str(step["stop"]) if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
                tif=step["tif"],
                remaining=str(step["lots"] * LOT),
                created_ms=clock + step["created_ms"],
                expires_ms=None if expires is None else clock + expires,
            )
            next_id += 1
            book.add(placed)
            reference[placed.id] = dataclasses.replace(placed)
        elif step["kind"] in ("cancel", "rebook") and reference:
            chosen = sorted(reference)[step["pick"] % len(reference)]
            if step["kind"] == "cancel":
                assert book.discard(chosen) is not None
                del reference[chosen]
            else:  # the same order booked again (a resync, a repeated event)
                again = dataclasses.replace(reference[chosen])
                book.add(again)
                reference[chosen] = dataclasses.replace(again)
        elif step["kind"] == "amend":
            resting = [
                o
                for o in reference.values()
                if o.type is OrderType.LIMIT and o.time_in_force not in IMMEDIATE_TIME_IN_FORCE
            ]
            if not resting:
                continue
            chosen_order = sorted(resting, key=lambda o: o.id)[step["pick"] % len(resting)]
            new_price = step["price"] if step["price"] is not None else chosen_order.limit_price
            new_remaining = max(LOT, chosen_order.remaining + step["lots"] * LOT)
            requeued = new_price != chosen_order.limit_price or (
                new_remaining > chosen_order.remaining
            )
            amended = dataclasses.replace(
                chosen_order,
                limit_price=new_price,
                remaining=new_remaining,
                version=chosen_order.version + 1,
                queue_anchor=next_id - 1 if requeued else chosen_order.queue_anchor,
                queued_at=(
                    T0 + timedelta(milliseconds=clock) if requeued else chosen_order.queued_at
                ),
            )
            book.add(amended)
            reference[amended.id] = dataclasses.replace(amended)
        elif step["kind"] == "expire":
            now = T0 + timedelta(milliseconds=clock + step["ms"])
            due = book.due(now)
            wanted = [
                o
                for o in sorted(reference.values(), key=lambda o: o.id)
                if o.expires_at is not None and o.expires_at <= now
            ]
            assert ids(due) == ids(wanted)
            for each in due:
                book.discard(each.id)
                del reference[each.id]
        elif step["kind"] in ("tick", "probe"):
            price: Decimal = step["price"]
            spread = Decimal(step["spread"]) / 10
            quote = "0" if step["no_quote"] else None
            this = tick(
                quote or str(price - spread),
                quote or str(price + spread),
                last=str(price),
                ms=clock + step["ms"],
                volume=str(step["lots"] * LOT),
            )
            # stops first: the ones the last price reaches, in priority
            triggered = book.triggered_by(this, tolerance)
            assert ids(triggered) == ids(reference_triggered(reference, this, tolerance))
            if step["kind"] == "tick":
                for each in triggered:  # as the matcher does (unless the tick expires it)
                    if each.expires_at is None or this.time < each.expires_at:
                        booked = dataclasses.replace(each, triggered=True, version=1)
                        book.add(booked)
                        reference[each.id] = dataclasses.replace(booked)
            acting = book.acting(this, tolerance)
            expected = reference_acting(reference, this, tolerance)
            assert ids(acting) == ids(expected)
            if step["kind"] == "probe":
                continue
            got = process(
                acting,
                lambda o: o.id in book,
                lambda o: book.discard(o.id),
                this,
                tolerance,
                partial,
            )
            # the old scan: every order, not only the acting ones
            everything = by_priority(reference)
            want = process(
                everything,
                lambda o: o.id in reference,
                lambda o: reference.pop(o.id),
                this,
                tolerance,
                partial,
            )
            assert got == want
        assert [(o.id, o.remaining) for o in book.orders()] == [
            (o.id, o.remaining) for o in sorted(reference.values(), key=lambda o: o.id)
        ]
        assert levels(book.bids()) == reference_levels(reference, OrderSide.BUY)
        assert levels(book.asks()) == reference_levels(reference, OrderSide.SELL)
        assert book.expiry_entries <= 2 * len(book) + 64


def reference_levels(
    resting: dict[int, RestingOrder], side: OrderSide
) -> list[tuple[str, list[int]]]:
    by_price: dict[Decimal, list[int]] = {}
    for each in by_priority(resting):
        if (
            each.side is side
            and each.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
            and not each.waiting_for_stop
            and each.time_in_force not in IMMEDIATE_TIME_IN_FORCE
        ):
            assert each.limit_price is not None
            by_price.setdefault(each.limit_price, []).append(each.id)
    best_first = sorted(by_price, reverse=side is OrderSide.BUY)
    return [(str(price), by_price[price]) for price in best_first]


booked_st = st.lists(
    st.tuples(
        st.sampled_from(list(OrderSide)),
        st.sampled_from(list(OrderType)),
        st.sampled_from(list(TimeInForce)),
        st.sampled_from(["9.9", "10.0", "10.1"]),  # the limit, and the stop of a stop order
        st.integers(min_value=0, max_value=100),  # created, ms after T0
        st.one_of(st.none(), st.integers(min_value=0, max_value=100)),  # expires
    ),
    max_size=60,
)
probes_st = st.lists(
    st.tuples(
        st.sampled_from(["0", "9.8", "9.9", "10.0", "10.1", "10.2"]),  # bid
        st.sampled_from(["0", "9.8", "9.9", "10.0", "10.1", "10.2"]),  # ask
        st.integers(min_value=0, max_value=110),  # stamped, ms after T0
    ),
    min_size=1,
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(booked=booked_st, probes=probes_st, tolerance_ms=st.sampled_from([0, 10]), data=st.data())
def test_any_tick_on_any_book_acts_on_what_the_old_scan_acted_on(
    booked: list[tuple[OrderSide, OrderType, TimeInForce, str, int, int | None]],
    probes: list[tuple[str, str, int]],
    tolerance_ms: int,
    data: st.DataObject,
) -> None:
    # given a book whose levels mix orders older and younger than the ticks
    resting = {
        i: order(
            i,
            side,
            None if type in (OrderType.MARKET, OrderType.STOP) else limit,
            type=type,
            tif=tif,
            created_ms=created,
            expires_ms=expires,
            stop=limit if type in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        )
        for i, (side, type, tif, limit, created, expires) in enumerate(booked, start=1)
    }
    # booked in any order (a resync's rows, events from several placers), so a
    # level may hold a young order ahead of older ones
    book = book_of(data.draw(st.permutations(list(resting.values()))))
    tolerance = timedelta(milliseconds=tolerance_ms)
    for bid, ask, ms in probes:
        this = tick(bid, ask, last="10.0", ms=ms)
        # then each tick names the orders the old scan acted on, in the same order
        assert ids(book.acting(this, tolerance)) == ids(reference_acting(resting, this, tolerance))
        # and the stops it triggers
        assert ids(book.triggered_by(this, tolerance)) == ids(
            reference_triggered(resting, this, tolerance)
        )
