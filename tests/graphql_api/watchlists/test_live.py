"""The live quotes of a watchlist follow edits to the list without resubscribing."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from graphql_api.platform.settings import Settings
from graphql_api.realtime.channels import tick_channel, watchlist_channel
from graphql_api.services import Services
from graphql_api.watchlists.live import WatchlistNotFoundError, WatchlistQuote, watchlist_quotes
from storage.repositories import watchlists as watchlist_repo
from storage.timeseries import Tick
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, MATCHER_ENABLED="false", STRATEGY_ENGINE_ENABLED="false")


def tick(symbol: str, last: str, seconds_ago: float = 0) -> Tick:
    price = Decimal(last)
    when = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return Tick(symbol, when, price, price, price, Decimal(1))


def watched_channels(services: Services) -> set[str]:
    """The tick and watchlist channels some mailbox of the hub listens to."""
    return {
        name
        for box in services.hub.mailboxes()
        for name in box.channels
        if name.startswith(("ticks.", "watchlists."))
    }


class Reader:
    """Reads a watchlist's quotes in a task of its own, as a subscriber would."""

    def __init__(self, services: Services, watchlist_id: int) -> None:
        self.quotes = watchlist_quotes(
            services.sessions,
            services.hub,
            services.timeseries,
            services.demo_user_id,
            watchlist_id,
        )
        self.received: asyncio.Queue[WatchlistQuote | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for quote in self.quotes:
            await self.received.put(quote)
        await self.received.put(None)  # the stream ended

    async def take(self, count: int) -> list[tuple[object, ...]]:
        """The next ``count`` quotes as (symbol, position, last price or None)."""
        taken: list[tuple[object, ...]] = []
        for _ in range(count):
            quote = await asyncio.wait_for(self.received.get(), 10)
            assert quote is not None, f"the stream ended after {taken}"
            taken.append((quote.symbol, quote.position, quote.tick.last if quote.tick else None))
        return taken

    async def nothing_more(self) -> None:
        await asyncio.sleep(0.4)
        assert self.received.empty(), self.received.get_nowait()

    async def ended(self) -> None:
        assert await asyncio.wait_for(self.received.get(), 10) is None
        await self.task

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_quotes_follow_adds_removes_and_reorders(services: Services) -> None:
    user = services.demo_user_id
    lists = services.watchlists
    # given a stored tick for BTCUSDT, none yet for ETHUSDT, and a list of both
    await services.ingestor.ingest([tick("BTCUSDT", "95000.00", seconds_ago=5)])
    created = await lists.create(user, "Crypto", ["BTCUSDT", "ETHUSDT"])
    assert created.watchlist is not None
    watchlist_id = created.watchlist.id
    reader = Reader(services, watchlist_id)
    try:
        # when subscribing: every symbol in list order, with its latest tick (or none)
        assert await reader.take(2) == [
            ("BTCUSDT", 0, Decimal("95000.00")),
            ("ETHUSDT", 1, None),
        ]
        # live ticks of symbols on the list follow; others do not
        await services.ingestor.ingest([tick("600519.SH", "1500.00", seconds_ago=1)])
        await services.ingestor.ingest([tick("ETHUSDT", "3400.00")])
        assert await reader.take(1) == [("ETHUSDT", 1, Decimal("3400.00"))]
        # an added symbol comes with its latest tick, at its place
        await lists.add(user, watchlist_id, ["600519.SH"], 0)
        assert await reader.take(3) == [
            ("600519.SH", 0, Decimal("1500.00")),
            ("BTCUSDT", 1, Decimal("95000.00")),
            ("ETHUSDT", 2, Decimal("3400.00")),
        ]
        # and then its live ticks, without resubscribing
        await services.ingestor.ingest([tick("600519.SH", "1501.00")])
        assert await reader.take(1) == [("600519.SH", 0, Decimal("1501.00"))]
        # a removed symbol is announced once, then its ticks stop
        await lists.remove(user, watchlist_id, ["BTCUSDT"])
        assert await reader.take(2) == [("BTCUSDT", None, None), ("ETHUSDT", 1, Decimal("3400.00"))]
        await services.ingestor.ingest([tick("BTCUSDT", "95100.00")])
        await services.ingestor.ingest([tick("ETHUSDT", "3401.00")])
        assert await reader.take(1) == [("ETHUSDT", 1, Decimal("3401.00"))]
        # a reorder re-sends the symbols that moved; a rename sends nothing
        await lists.reorder(user, watchlist_id, ["ETHUSDT", "600519.SH"])
        assert await reader.take(2) == [
            ("ETHUSDT", 0, Decimal("3401.00")),
            ("600519.SH", 1, Decimal("1501.00")),
        ]
        await lists.rename(user, watchlist_id, "Renamed")
        await reader.nothing_more()
        # the hub listens to exactly the list's channels
        assert watched_channels(services) == {
            tick_channel("ETHUSDT"),
            tick_channel("600519.SH"),
            watchlist_channel(user),
        }
        # deleting the list ends the stream
        await lists.delete(user, watchlist_id)
        await reader.ended()
    finally:
        await reader.close()
    assert watched_channels(services) == set()


async def test_after_a_bus_reconnect_the_list_and_prices_are_read_again(
    services: Services,
) -> None:
    user = services.demo_user_id
    created = await services.watchlists.create(user, "Crypto", ["BTCUSDT", "ETHUSDT"])
    assert created.watchlist is not None
    watchlist_id = created.watchlist.id
    reader = Reader(services, watchlist_id)
    try:
        assert await reader.take(2) == [("BTCUSDT", 0, None), ("ETHUSDT", 1, None)]
        # given changes whose events the bus lost: a stored tick never published,
        # and a symbol added to the list without an announcement
        await services.timeseries.write_ticks([tick("ETHUSDT", "3400.00")])
        async with services.sessions() as session:
            await watchlist_repo.replace_symbols(
                session, watchlist_id, ["BTCUSDT", "ETHUSDT", "600519.SH"]
            )
            await session.commit()
        await reader.nothing_more()
        # when the bus reconnects
        services.hub.bus_reconnected()
        # then the stream catches up from the database
        assert sorted(await reader.take(2), key=str) == [
            ("600519.SH", 2, None),
            ("ETHUSDT", 1, Decimal("3400.00")),
        ]
        await reader.nothing_more()
    finally:
        await reader.close()


async def test_someone_elses_or_a_missing_list_is_not_found(services: Services) -> None:
    created = await services.watchlists.create(services.demo_user_id, "Mine", ["BTCUSDT"])
    assert created.watchlist is not None
    for user, watchlist_id in (
        (services.demo_user_id + 1000, created.watchlist.id),
        (
            services.demo_user_id,
            999_999,
        ),
    ):
        quotes = watchlist_quotes(
            services.sessions, services.hub, services.timeseries, user, watchlist_id
        )
        with pytest.raises(WatchlistNotFoundError):
            await anext(quotes)
    assert watched_channels(services) == set()
