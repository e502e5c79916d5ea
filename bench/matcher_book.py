"""Per-tick matching cost against the number of resting orders that do not cross.

For books of 0, 1,000, 10,000 and 100,000 resting LIMIT orders away from the
market (half bids below it, half asks above it; half of them DAY orders with
an expiry later today), it times the work a tick costs before any fill is
written: picking the orders the tick acts on. Two ticks: one that crosses
nothing, and one that crosses five orders placed at the touch. Also the
once-a-second DAY expiry pass when nothing is due.

For the quiet tick it also times the whole ``PaperMatcher.on_tick`` (the
late-tick check included; such a tick writes nothing, so no database is
touched). Each selection is measured twice in the same run: with :class:`OrderBook` (what
the matcher does now) and with the former scan (every resting order sorted by
id and tested, kept below as the reference; the matcher's tests hold the book
to the same answers). Medians of 21 samples, in microseconds per tick.

    taskset -c 1 .venv/bin/python -m bench.matcher_book

Writes bench/results/matcher_book.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from broadcaster import Broadcast

from graphql_api.market.symbols import SymbolCatalog
from graphql_api.realtime.hub import Hub
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.trading.book import OrderBook, RestingOrder
from graphql_api.trading.matcher import PaperMatcher
from graphql_api.trading.order_types import OrderSide, OrderType, TimeInForce
from graphql_api.trading.orders import OrderService
from storage.engine import create_engine, create_session_factory
from storage.timeseries import Tick
from storage.timeseries.sql import SqlTimeSeriesStore
from tests.graphql_api.conftest import POLICY

RESULTS = Path(__file__).parent / "results" / "matcher_book.json"
SIZES = (0, 1_000, 10_000, 100_000)
SAMPLES = 21
SAMPLE_SECONDS = 0.005
T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
TOLERANCE = timedelta(0)


def old_scan(resting: dict[int, RestingOrder], tick: Tick) -> list[RestingOrder]:
    """The former per-tick selection: sort every order by id and test each one."""
    acting = []
    for order in sorted(resting.values(), key=lambda o: o.id):
        if tick.time < order.created_at - TOLERANCE:
            continue
        expired = order.expires_at is not None and tick.time >= order.expires_at
        if expired or order.fill_price(tick) is not None or order.time_in_force is TimeInForce.IOC:
            acting.append(order)
    return acting


def old_expiry(books: dict[str, dict[int, RestingOrder]], now: datetime) -> list[RestingOrder]:
    """The former expiry pass: every order of every symbol."""
    return [
        order
        for resting in books.values()
        for order in resting.values()
        if order.expires_at is not None and order.expires_at <= now
    ]


def resting_orders(count: int) -> list[RestingOrder]:
    """``count`` orders 1%-10% away from a market at 100.00/100.01, none crossing."""
    orders = []
    for i in range(count):
        side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
        offset = Decimal(1 + i % 1_000) / 100  # 1,000 price levels a side
        price = Decimal(99) - offset if side is OrderSide.BUY else Decimal(101) + offset
        day = i % 4 < 2
        orders.append(
            RestingOrder(
                id=i + 1,
                symbol="BENCH",
                side=side,
                type=OrderType.LIMIT,
                time_in_force=TimeInForce.DAY if day else TimeInForce.GTC,
                limit_price=price,
                remaining=Decimal(100),
                version=0,
                expires_at=T0 + timedelta(hours=6) if day else None,
                created_at=T0,
            )
        )
    return orders


def crossing_orders(first_id: int) -> list[RestingOrder]:
    """Five orders the crossing tick fills: three bids and two asks at the touch."""
    return [
        RestingOrder(
            id=first_id + i,
            symbol="BENCH",
            side=OrderSide.BUY if i < 3 else OrderSide.SELL,
            type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            limit_price=Decimal("100.01") if i < 3 else Decimal("100.00"),
            remaining=Decimal(100),
            version=0,
            expires_at=None,
            created_at=T0,
        )
        for i in range(5)
    ]


def median_micros(call: Callable[[], object]) -> float:
    """Median microseconds per call over SAMPLES samples of enough calls each."""
    started = time.perf_counter()
    call()
    once = max(time.perf_counter() - started, 1e-7)
    repeat = max(1, int(SAMPLE_SECONDS / once))
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        for _ in range(repeat):
            call()
        samples.append((time.perf_counter() - started) / repeat)
    return round(statistics.median(samples) * 1e6, 2)


async def median_micros_async(call: Callable[[], Awaitable[object]]) -> float:
    """:func:`median_micros` for a coroutine, awaited in one running loop."""
    started = time.perf_counter()
    await call()
    once = max(time.perf_counter() - started, 1e-7)
    repeat = max(1, int(SAMPLE_SECONDS / once))
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        for _ in range(repeat):
            await call()
        samples.append((time.perf_counter() - started) / repeat)
    return round(statistics.median(samples) * 1e6, 2)


async def quiet_on_tick(orders: list[RestingOrder], tick: Tick) -> float:
    """``PaperMatcher.on_tick`` for a tick that crosses nothing, over ``orders``.

    Such a tick returns before any query, so the collaborators are real but
    never used: an in-memory SQLite engine nobody connects to, a memory
    broadcaster nobody subscribes to.
    """
    engine = create_engine("sqlite+aiosqlite://")
    sessions = create_session_factory(engine)
    hub = Hub(Broadcast("memory://"))
    catalog = SymbolCatalog(sessions)
    outbox = EventOutbox(sessions, hub)
    service = OrderService(sessions, catalog, SqlTimeSeriesStore(engine), outbox, POLICY)
    # The tick is replayed: a lag bound of a century keeps it on time.
    matcher = PaperMatcher(
        sessions, hub, catalog, service, POLICY, max_tick_lag=timedelta(days=36_500)
    )
    for order in orders:
        matcher.book_order(order)  # as the orders.new event books it
    try:
        return await median_micros_async(lambda: matcher.on_tick(tick))
    finally:
        assert matcher.watermark.late_ticks == 0
        await engine.dispose()


def measure(size: int) -> dict[str, float]:
    orders = resting_orders(size) + crossing_orders(size + 1)
    # One tick at 100.00/100.01: it crosses none of the resting orders, and the
    # five crossing orders when they rest too (the "crossing" book).
    tick = Tick(
        "BENCH",
        T0 + timedelta(seconds=1),
        Decimal("100.00"),
        Decimal("100.00"),
        Decimal("100.01"),
        Decimal(10**6),
    )
    book_quiet, book_crossing = OrderBook(), OrderBook()
    for order in orders[:size]:
        book_quiet.add(order)
        book_crossing.add(order)
    for order in orders[size:]:
        book_crossing.add(order)
    scan_quiet = {order.id: order for order in orders[:size]}
    scan_crossing = {order.id: order for order in orders}
    assert book_quiet.acting(tick, TOLERANCE) == old_scan(scan_quiet, tick) == []
    assert [o.id for o in book_crossing.acting(tick, TOLERANCE)] == [
        o.id for o in old_scan(scan_crossing, tick)
    ]
    assert len(book_crossing.acting(tick, TOLERANCE)) == 5
    not_yet = T0 + timedelta(minutes=1)
    return {
        "resting_orders": size,
        "quiet_on_tick_us": asyncio.run(quiet_on_tick(orders[:size], tick)),
        "quiet_tick_book_us": median_micros(lambda: book_quiet.acting(tick, TOLERANCE)),
        "quiet_tick_old_scan_us": median_micros(lambda: old_scan(scan_quiet, tick)),
        "crossing_tick_book_us": median_micros(lambda: book_crossing.acting(tick, TOLERANCE)),
        "crossing_tick_old_scan_us": median_micros(lambda: old_scan(scan_crossing, tick)),
        "expiry_pass_book_us": median_micros(lambda: book_quiet.due(not_yet)),
        "expiry_pass_old_scan_us": median_micros(
            lambda: old_expiry({"BENCH": scan_quiet}, not_yet)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    rows = [measure(size) for size in SIZES]
    empty, largest = rows[0], rows[-1]
    result = {
        "command": "taskset -c 1 .venv/bin/python -m bench.matcher_book",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "unit": "microseconds per tick (median of 21 samples)",
        "rows": rows,
        "quiet_tick_100k_over_empty": {
            "on_tick": round(largest["quiet_on_tick_us"] / empty["quiet_on_tick_us"], 2),
            "book": round(largest["quiet_tick_book_us"] / empty["quiet_tick_book_us"], 2),
            "old_scan": round(
                largest["quiet_tick_old_scan_us"] / empty["quiet_tick_old_scan_us"], 1
            ),
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
