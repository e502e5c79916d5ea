"""The Binance source against a local server speaking Binance's documented formats:
ticks from trades and book tickers as exact decimals, a dropped connection resumed,
malformed messages skipped and counted, a stalled stream reconnected, the renewal
before the 24-hour cut, the serverShutdown event, and symbols that cannot run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus

import pytest
from sqlalchemy import text
from websockets.asyncio.server import ServerConnection

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import SourceHealth, SourceState, TickSource
from graphql_api.market.sources import Backoff, supervise
from graphql_api.market.sources.binance import BinanceEndpoints, BinanceSource
from graphql_api.platform.resilience import CircuitBreaker
from storage.timeseries import Tick
from tests.graphql_api.conftest import Embedded
from tests.graphql_api.market.sources.fake_binance import (
    FakeBinance,
    book_ticker,
    running_fake,
    trade,
)

D = Decimal
SYMBOL = "BTCUSDT"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with running_fake() as server:
        yield server


def now_ms(offset: float = 0) -> int:
    return int((time.time() + offset) * 1000)


def source_for(fake: FakeBinance, parts: Embedded, **options: float) -> BinanceSource:
    return BinanceSource(
        [SYMBOL],
        BinanceEndpoints(fake.ws_url, fake.rest_url),
        parts.catalog.cached,
        **options,  # type: ignore[arg-type]
    )


async def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - waits on the source task
            await asyncio.sleep(0.01)


class Running:
    """A source supervised in the background, cancelled at the end of the test."""

    def __init__(self, source: BinanceSource, ingestor: TickIngestor) -> None:
        breaker = CircuitBreaker("source-binance", failure_threshold=5, reset_timeout=0.1)
        backoff = Backoff(initial=0.01, maximum=0.05, jitter=False)
        self.task = asyncio.create_task(
            supervise(source, ingestor, breaker=breaker, backoff=backoff)
        )
        self.health: SourceHealth = ingestor.health.of(TickSource.BINANCE)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def stored_since(parts: Embedded, since: datetime) -> list[Tick]:
    return await parts.store.ticks(SYMBOL, since, None, 1000)


def sends(*messages: str, close: bool = False) -> Callable[[ServerConnection], Awaitable[None]]:
    async def script(connection: ServerConnection) -> None:
        for message in messages:
            await connection.send(message)
        if close:
            await connection.close()

    return script


async def test_a_trade_with_the_latest_book_ticker_is_a_tick_in_exact_decimals(
    fake: FakeBinance, parts: Embedded, ingestor: TickIngestor
) -> None:
    # given a stream with two book tickers (the older update arriving last) and a trade
    at = now_ms()
    fake.scripts.append(
        sends(
            book_ticker(11, "95000.00000000", "95000.02000000"),
            book_ticker(10, "94000.00000000", "94000.02000000"),  # stale: ignored
            trade(1, "95000.01000000", "0.00123000", at),
        )
    )
    since = datetime.now(UTC) - timedelta(seconds=5)
    running = Running(source_for(fake, parts), ingestor)
    await wait_for(lambda: running.health.stored == 1)
    await running.stop()
    # then one tick: the trade's price, time and quantity, the newest book's bid and ask
    [tick] = await stored_since(parts, since)
    assert (tick.last, tick.bid, tick.ask, tick.volume) == (
        D("95000.01"),
        D("95000.00"),
        D("95000.02"),
        D("0.00123"),
    )
    assert str(tick.last) == "95000.01" and str(tick.volume) == "0.00123"
    assert tick.time == datetime.fromtimestamp(at / 1000, UTC)
    # and the documented requests: exchangeInfo for the symbol, the combined streams
    assert fake.info_queries == ["/api/v3/exchangeInfo?symbols=%5B%22BTCUSDT%22%5D"]
    assert fake.paths == ["/stream?streams=btcusdt@bookTicker/btcusdt@trade"]


async def test_a_dropped_connection_reconnects_and_resumes(
    fake: FakeBinance, parts: Embedded, ingestor: TickIngestor
) -> None:
    fake.scripts.append(sends(trade(1, "95000.01", "0.1", now_ms()), close=True))
    fake.scripts.append(sends(trade(2, "95000.02", "0.1", now_ms())))
    since = datetime.now(UTC) - timedelta(seconds=5)
    source = source_for(fake, parts)
    running = Running(source, ingestor)
    await wait_for(lambda: running.health.stored == 2)
    assert running.health.state is SourceState.RUNNING
    await running.stop()
    assert [t.last for t in await stored_since(parts, since)] == [D("95000.01"), D("95000.02")]
    assert source.connections == 2
    assert running.health.restarts == 1
    assert running.health.last_error is not None
    assert running.health.last_error.startswith("ConnectionClosed")


async def test_malformed_messages_are_skipped_and_counted_not_fatal(
    fake: FakeBinance, parts: Embedded, ingestor: TickIngestor
) -> None:
    at = now_ms()
    fake.scripts.append(
        sends(
            "not json",
            "[1, 2]",
            '{"stream": "btcusdt@trade", "data": {"e": "trade", "s": "BTCUSDT", "t": 1,'
            ' "p": 95000.5, "q": "1", "T": 1}}',  # a float price, not the documented string
            '{"stream": "btcusdt@depth", "data": {}}',
            trade(2, "-1", "1", at),
            trade(3, "95000.01", "1", at, symbol="ETHUSDT"),  # not subscribed
            book_ticker(5, "95000.05", "95000.01"),  # bid above ask: its trades are refused
            trade(4, "95000.03", "1", at),
            book_ticker(6, "95000.00", "95000.04"),
            trade(5, "95000.03", "1", at),
        )
    )
    since = datetime.now(UTC) - timedelta(seconds=5)
    source = source_for(fake, parts)
    running = Running(source, ingestor)
    await wait_for(lambda: running.health.stored == 1)
    await running.stop()
    assert source.skipped == 7
    assert running.health.restarts == 0
    [tick] = await stored_since(parts, since)
    assert (tick.bid, tick.last, tick.ask) == (D("95000.00"), D("95000.03"), D("95000.04"))


async def test_a_stalled_stream_is_reconnected(
    fake: FakeBinance, parts: Embedded, ingestor: TickIngestor
) -> None:
    fake.scripts.append(sends(trade(1, "95000.01", "0.1", now_ms())))  # then silence
    fake.scripts.append(sends(trade(2, "95000.02", "0.1", now_ms())))
    source = source_for(fake, parts, stall_seconds=0.3)
    running = Running(source, ingestor)
    await wait_for(lambda: running.health.stored == 2)
    await running.stop()
    assert source.connections == 2
    assert running.health.last_error == "StalledStreamError: no message for 0.3s"


async def test_the_connection_is_renewed_before_the_24_hour_cut(
    fake: FakeBinance, parts: Embedded, ingestor: TickIngestor
) -> None:
    async def steady(connection: ServerConnection) -> None:
        for number in range(1000):
            await connection.send(trade(number, "95000.01", "0.1", now_ms()))
            await asyncio.sleep(0.05)

    fake.scripts.extend([steady, steady, steady])
    # a "day" of 0.3 s: the source must renew without a fault (no restart, no backoff)
    source = source_for(fake, parts, max_connection_seconds=0.3, stall_seconds=5)
    running = Running(source, ingestor)
    await wait_for(lambda: source.connections >= 3)
    await running.stop()
    assert running.health.restarts == 0
    assert running.health.stored >= 5


async def test_a_server_shutdown_event_reconnects_at_once(
    fake: FakeBinance, parts: Embedded, ingestor: TickIngestor
) -> None:
    shutdown = '{"stream": "btcusdt@trade", "data": {"e": "serverShutdown", "E": 1}}'
    fake.scripts.append(sends(trade(1, "95000.01", "0.1", now_ms()), shutdown))
    fake.scripts.append(sends(trade(2, "95000.02", "0.1", now_ms())))
    source = source_for(fake, parts, stall_seconds=30)
    running = Running(source, ingestor)
    await wait_for(lambda: running.health.stored == 2, timeout=5)
    await running.stop()
    assert running.health.last_error == "ServerClosingError: serverShutdown event"


async def test_a_symbol_binance_does_not_list_fails_the_source_once(
    fake: FakeBinance, parts: Embedded, ingestor: TickIngestor
) -> None:
    fake.info_status = HTTPStatus.BAD_REQUEST
    fake.info_body = {"code": -1121, "msg": "Invalid symbol."}
    running = Running(source_for(fake, parts), ingestor)
    assert await asyncio.wait_for(running.task, 5) is SourceState.FAILED
    assert running.health.last_error is not None
    assert "Invalid symbol." in running.health.last_error
    assert fake.paths == []  # never connected
    assert len(fake.info_queries) == 1


async def test_a_symbol_our_catalogue_does_not_know_fails_the_source(
    fake: FakeBinance, parts: Embedded, ingestor: TickIngestor
) -> None:
    source = BinanceSource(
        ["NOPEUSDT"], BinanceEndpoints(fake.ws_url, fake.rest_url), parts.catalog.cached
    )
    breaker = CircuitBreaker("source-binance")
    state = await supervise(source, ingestor, breaker=breaker, backoff=Backoff())
    assert state is SourceState.FAILED
    assert "NOPEUSDT not in the symbol catalogue" in (
        ingestor.health.of(TickSource.BINANCE).last_error or ""
    )


async def test_an_unreachable_exchange_is_retried_with_backoff(
    parts: Embedded, ingestor: TickIngestor
) -> None:
    endpoints = BinanceEndpoints("ws://127.0.0.1:9", "http://127.0.0.1:9")  # nothing listens
    source = BinanceSource([SYMBOL], endpoints, parts.catalog.cached)
    running = Running(source, ingestor)
    await wait_for(lambda: running.health.restarts >= 3)
    await running.stop()
    assert running.health.state in {SourceState.RECONNECTING, SourceState.CIRCUIT_OPEN}
    assert running.health.stored == 0


async def test_a_failed_write_loses_the_tick_not_the_connection(
    fake: FakeBinance, parts: Embedded, ingestor: TickIngestor
) -> None:
    # given a store that refuses BTCUSDT's rows for a while
    if parts.engine.dialect.name == "sqlite":
        create = (
            "CREATE TRIGGER refuse_tick BEFORE INSERT ON ticks "
            "WHEN NEW.symbol = 'BTCUSDT' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        drop = "DROP TRIGGER refuse_tick"
    else:
        await _execute(
            parts,
            "CREATE FUNCTION refuse_tick() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql",
        )
        create = (
            "CREATE TRIGGER refuse_tick BEFORE INSERT ON ticks FOR EACH ROW "
            "WHEN (NEW.symbol = 'BTCUSDT') EXECUTE FUNCTION refuse_tick()"
        )
        drop = "DROP TRIGGER refuse_tick ON ticks"
    await _execute(parts, create)
    healed = asyncio.Event()

    async def script(connection: ServerConnection) -> None:
        await connection.send(trade(1, "95000.01", "0.1", now_ms()))
        await healed.wait()
        await connection.send(trade(2, "95000.02", "0.1", now_ms()))

    fake.scripts.append(script)
    since = datetime.now(UTC) - timedelta(seconds=5)
    source = source_for(fake, parts)
    running = Running(source, ingestor)
    await wait_for(lambda: running.health.failed == 1)
    # when the store recovers
    await _execute(parts, drop)
    healed.set()
    await wait_for(lambda: running.health.stored == 1)
    await running.stop()
    # then the stream went on over the same connection: one tick lost, the next stored
    assert source.connections == 1
    assert running.health.restarts == 0
    assert [t.last for t in await stored_since(parts, since)] == [D("95000.02")]


async def _execute(parts: Embedded, statement: str) -> None:
    async with parts.engine.begin() as connection:
        await connection.execute(text(statement))
