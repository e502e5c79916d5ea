"""The minute bars the SQL store keeps give exactly the bars its ticks give.

The reference is the straightforward one: every stored tick of the symbol, in
(time, id) order (the order ``ticks`` reads them in), folded into bars. Ticks
arrive in random batches, out of order, with equal times inside and across
batches, and (on PostgreSQL) from writers racing for the same minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine
from storage.timeseries import KlineInterval, Tick, TimeSeriesWriteError
from storage.timeseries.base import TickBatch
from storage.timeseries.sql import SqlTimeSeriesStore
from tests.conftest import sql_database
from tests.support.minute_bars import (
    assert_bar_ends_are_their_ticks,
    assert_bars_match_ticks,
    reference_bars,
)

T = TypeVar("T")
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


class StoreThread:
    """A store on an event loop of its own: hypothesis drives a synchronous test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._stack = contextlib.AsyncExitStack()
        self.store: SqlTimeSeriesStore
        self.engine: AsyncEngine

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    async def start(self, request: pytest.FixtureRequest, kind: str, copy_from: int) -> None:
        url = await self._stack.enter_async_context(sql_database(request, kind))
        self.engine = engine = create_engine(url)
        self._stack.push_async_callback(engine.dispose)
        self.store = SqlTimeSeriesStore(engine, copy_from=copy_from)

    def close(self) -> None:
        self.run(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# PostgreSQL writes small batches in one statement and large ones by COPY
# (PostgresTickWriter): "postgresql-copy" sends every batch by COPY.
@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql-copy", marks=pytest.mark.postgres),
    ]
)
def store_thread(request: pytest.FixtureRequest) -> Iterator[StoreThread]:
    request.getfixturevalue("sqlite_template")
    kind, _, copy = request.param.partition("-")
    if kind == "postgresql":
        request.getfixturevalue("postgres_template")
    running = StoreThread()
    try:
        running.run(running.start(request, kind, 1 if copy else 1_000_000))
        yield running
    finally:
        running.close()


# Times bunched on a few minutes and their edges, so equal times and bucket
# boundaries are common; prices of one scale, volumes of several.
moments = st.builds(
    lambda minute, second, micros: (
        T0 + timedelta(minutes=minute, seconds=second, microseconds=micros)
    ),
    st.integers(min_value=0, max_value=130),
    st.sampled_from([0, 0, 1, 30, 59]),
    st.sampled_from([0, 0, 1, 999_999]),
)
prices = st.integers(min_value=1, max_value=500).map(lambda cents: Decimal(cents).scaleb(-2))
volumes = st.sampled_from(["1", "0.5", "0.001", "2.10", "100"]).map(Decimal)
tick_lists = st.lists(st.tuples(moments, prices, volumes), min_size=1, max_size=60)


@settings(
    max_examples=40,
    deadline=None,
    # one store serves every example; each example writes a symbol of its own
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    rows=tick_lists,
    cuts=st.lists(st.integers(min_value=1, max_value=59), max_size=6),
    keyed=st.booleans(),
)
def test_bars_from_random_batches_are_the_bars_of_the_ticks(
    store_thread: StoreThread,
    rows: list[tuple[datetime, Decimal, Decimal]],
    cuts: list[int],
    keyed: bool,
) -> None:
    symbol = f"H{uuid.uuid4().hex[:10]}"
    ticks = [Tick(symbol, time, price, price, price, size) for time, price, size in rows]
    edges = [0, *sorted({cut for cut in cuts if cut < len(ticks)}), len(ticks)]
    batches = [ticks[a:b] for a, b in itertools.pairwise(edges)]
    store = store_thread.store

    async def write_and_check() -> None:
        for batch in batches:
            if keyed:  # the ingest path: several batches in one transaction
                await store.write_batches([TickBatch(batch[:1]), TickBatch(batch[1:])])
            else:
                await store.write_ticks(batch)
        await assert_bars_match_ticks(store, symbol)
        await assert_bar_ends_are_their_ticks(store_thread.engine, symbol)

    store_thread.run(write_and_check())


@pytest.fixture
async def postgres_engine(request: pytest.FixtureRequest) -> AsyncIterator[AsyncEngine]:
    async with sql_database(request, "postgresql") as url:
        engine = create_engine(url, pool_size=10)
        try:
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture(params=[1, 1_000_000], ids=["copy", "one-statement"])
def postgres_store(
    postgres_engine: AsyncEngine, request: pytest.FixtureRequest
) -> SqlTimeSeriesStore:
    return SqlTimeSeriesStore(postgres_engine, copy_from=request.param)


def ticks_at(symbol: str, seconds: Iterable[int], base: int, cycle: int, volume: str) -> list[Tick]:
    """Ticks ``seconds`` after T0, the price ``base`` plus the second modulo ``cycle``
    (so prices repeat and high, low, open and close differ), bid and ask 100."""
    return [
        Tick(
            symbol,
            T0 + timedelta(seconds=second),
            Decimal(base + second % cycle),
            Decimal(100),
            Decimal(100),
            Decimal(volume),
        )
        for second in seconds
    ]


@pytest.mark.postgres
async def test_writers_racing_for_the_same_minutes_lose_no_tick(
    postgres_store: SqlTimeSeriesStore,
) -> None:
    # given eight writers, each with ticks on the same two minutes and the same times
    symbol = "RACE"
    writers = [
        ticks_at(symbol, range(0, 120, 3), 100 + writer * 10, 7, "0.1") for writer in range(8)
    ]
    # when they all write at once, several times over
    for _ in range(3):
        await asyncio.gather(*(postgres_store.write_ticks(ticks) for ticks in writers))
    # then every minute holds every tick, opened and closed by its (time, id)-first and -last
    await assert_bars_match_ticks(postgres_store, symbol)
    (first, second) = await postgres_store.klines(symbol, KlineInterval.MINUTE_1, None, None, 5)
    assert (first.trade_count, second.trade_count) == (3 * 8 * 20, 3 * 8 * 20)
    assert first.volume == Decimal("48.0")


@pytest.mark.postgres
@pytest.mark.parametrize("copy_from", [1, 1_000_000], ids=["copy", "one-statement"])
async def test_writers_whose_ids_interleave_fold_only_their_own_ticks(
    postgres_engine: AsyncEngine, copy_from: int
) -> None:
    # given two stores (as of two processes) that take ids 25 at a time and write
    # batches of 17 or 18 ticks in turn: a batch's ids then run on from what is
    # left of its store's last block into a new one, around the other's ticks
    stores = [
        SqlTimeSeriesStore(postgres_engine, id_block=25, copy_from=copy_from) for _ in range(2)
    ]
    symbol = "GAPS"
    batches = [
        ticks_at(symbol, range(batch % 3, 120, 7), 100 + batch * 3, 5, "0.5") for batch in range(12)
    ]
    # when they write in turn
    for index, ticks in enumerate(batches):
        await stores[index % 2].write_ticks(ticks)
    # then each minute holds each tick once, the other store's ticks in its range too
    await assert_bars_match_ticks(stores[0], symbol)
    minutes = await stores[0].klines(symbol, KlineInterval.MINUTE_1, None, None, 5)
    assert sum(bar.trade_count for bar in minutes) == sum(len(ticks) for ticks in batches)


@pytest.mark.parametrize("copy_from", [1, 1_000_000], ids=["copy", "one-statement"])
async def test_a_write_whose_bars_fail_leaves_no_tick(database_url: str, copy_from: int) -> None:
    # given a database that refuses every minute bar
    engine = create_engine(database_url)
    store = SqlTimeSeriesStore(engine, copy_from=copy_from)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text(
                        "CREATE FUNCTION refuse_bars() RETURNS trigger LANGUAGE plpgsql "
                        "AS $$ BEGIN RAISE EXCEPTION 'no bars'; END $$"
                    )
                )
                trigger = "FOR EACH ROW EXECUTE FUNCTION refuse_bars()"
            else:
                trigger = "BEGIN SELECT RAISE(ABORT, 'no bars'); END"
            await connection.execute(
                text(f"CREATE TRIGGER refuse BEFORE INSERT ON minute_bars {trigger}")
            )
        ticks = [
            Tick(
                "ATOMIC", T0 + timedelta(seconds=s), Decimal(1), Decimal(1), Decimal(1), Decimal(1)
            )
            for s in range(3)
        ]
        # when ticks are written, alone and as a batch of the ingest path
        with pytest.raises(TimeSeriesWriteError):
            await store.write_ticks(ticks)
        with pytest.raises(TimeSeriesWriteError):
            await store.write_batches([TickBatch(ticks)])
        # then neither write left a tick
        assert await store.ticks("ATOMIC", None, None, 10) == []
    finally:
        await engine.dispose()


async def test_long_reads_give_the_bars_of_their_ticks_and_stop_when_complete(
    database_url: str,
) -> None:
    # given 1,230 minutes of ticks, two or three a minute (SQLite folds reads of over
    # 1,000 minute rows part by part, stopping once the answer is complete)
    engine = create_engine(database_url)
    store = SqlTimeSeriesStore(engine)
    symbol = "LONG"
    try:
        ticks = ticks_at(symbol, range(0, 1230 * 60, 23), 100, 13, "0.25")
        for start in range(0, len(ticks), 1000):
            await store.write_ticks(ticks[start : start + 1000])
        stored = await store.ticks(symbol, None, None, 1_000_000)
        for interval, limit in [
            (KlineInterval.MINUTE_1, 1001),  # the second part completes it
            (KlineInterval.MINUTE_1, 1230),
            (KlineInterval.MINUTE_15, 70),  # 1,050 rows at most: all of them
            (KlineInterval.HOUR_1, 17),  # 1,020 rows at most, more hours than asked
            (KlineInterval.HOUR_1, 20),
        ]:
            expected = reference_bars(stored, interval)
            # when read newest first and from the start
            newest = await store.klines(symbol, interval, None, None, limit)
            oldest = await store.klines(symbol, interval, expected[0].time, None, limit)
            # then each is the reference's bars at that end
            assert newest == expected[-limit:], (interval, limit)
            assert oldest == expected[:limit], (interval, limit)
    finally:
        await engine.dispose()
