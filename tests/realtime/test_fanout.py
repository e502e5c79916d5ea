"""Serialize once: shared executions, bounded per-socket queues, slow consumers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import resolvers.subscriptions
import schema.market
from graphql_api.realtime.channels import order_channel
from graphql_api.realtime.events import encode_id_event
from graphql_api.realtime.multiplex import SLOW_CONSUMER_CLOSE
from graphql_api.server.websocket import RealtimeOptions
from graphql_api.server.websocket.connection import Connection
from resolvers.amounts import Amounts
from storage.timeseries import Tick
from tests.conftest import http_client, login_token, make_settings
from tests.realtime.conftest import RealtimeServer, closed_with, open_raw, realtime_server, until
from tests.support.graphql import WsClient, execute

TICKS = "subscription ($symbols: [String!]!) { ticks(symbols: $symbols) { symbol last time } }"
ORDER_UPDATES = """
subscription { orderUpdates { id status side type quantity limitPrice clientOrderId
  filledQuantity symbol { code name exchange currency } } }
"""
PLACE_ORDER = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id } userErrors { code } }
}
"""
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
BASE = {"BTCUSDT": 95000, "ETHUSDT": 3400, "SOLUSDT": 185, "BNBUSDT": 620}


class Clock:
    """Strictly increasing tick times (a tick older than the snapshot is skipped)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) - timedelta(minutes=5)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def tick(clock: Clock, symbol: str, last: str) -> Tick:
    price = Decimal(last)
    return Tick(symbol, clock(), price, price, price, Decimal(1))


def price(symbol: str, n: int) -> str:
    return f"{BASE[symbol] + n / 100:.2f}"


@contextlib.contextmanager
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Count real resolver work: subscription starts and per-event field resolution."""
    calls = {"tick_stream": 0, "from_domain": 0}
    stream = resolvers.subscriptions.tick_stream
    from_domain = schema.market.Tick.from_domain

    def counted_stream(*args: Any, **kwargs: Any) -> Any:
        calls["tick_stream"] += 1
        return stream(*args, **kwargs)

    def counted_from_domain(value: Tick, scale: Amounts) -> schema.market.Tick:
        calls["from_domain"] += 1
        return from_domain(value, scale)

    monkeypatch.setattr(resolvers.subscriptions, "tick_stream", counted_stream)
    monkeypatch.setattr(schema.market.Tick, "from_domain", staticmethod(counted_from_domain))
    yield calls


# --- sharing -------------------------------------------------------------------------


async def test_identical_subscriptions_share_one_execution_per_event(
    mx: RealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    await mx.services.ingestor.ingest([tick(clock, "BTCUSDT", "95000.00")])
    clients = [await WsClient.open(mx.url) for _ in range(10)]
    stats = mx.state.registry.stats
    try:
        with counting(monkeypatch) as calls:
            for client in clients:
                await client.subscribe(TICKS, {"symbols": ["BTCUSDT"]})
            # every subscriber starts with the snapshot (live or replayed)
            for client in clients:
                assert (await client.next_data())["ticks"]["last"] == "95000.00"
            before = stats.executions
            for n in range(1, 6):
                await mx.services.ingestor.ingest([tick(clock, "BTCUSDT", price("BTCUSDT", n))])
                for client in clients:
                    data = await client.next_data()
                    assert data["ticks"]["last"] == price("BTCUSDT", n)
            # one execution of the subscription, one resolution per event
            assert calls["tick_stream"] == 1
            assert calls["from_domain"] == 1 + 5
            assert stats.executions - before == 5
            assert mx.state.registry.stream_count == 1
    finally:
        for client in clients:
            await client.close()
    await until(lambda: mx.state.registry.stream_count == 0, what="last one out stops it")


async def test_different_variables_get_independent_streams(mx: RealtimeServer) -> None:
    clock = Clock()
    btc = await WsClient.open(mx.url)
    eth = await WsClient.open(mx.url, protocol="graphql-ws")
    try:
        await btc.subscribe(TICKS, {"symbols": ["BTCUSDT"]})
        await eth.subscribe(TICKS, {"symbols": ["ETHUSDT"]})
        await until(lambda: mx.state.registry.stream_count == 2)
        await asyncio.sleep(0.2)  # both attached to the hub
        await mx.services.ingestor.ingest([tick(clock, "ETHUSDT", "3401.00")])
        await mx.services.ingestor.ingest([tick(clock, "BTCUSDT", "95001.00")])
        seen_btc = await btc.next_data()
        seen_eth = await eth.next_data()
        # skip snapshots of seeded ticks, if any
        while seen_btc["ticks"]["last"] != "95001.00":
            seen_btc = await btc.next_data()
        while seen_eth["ticks"]["last"] != "3401.00":
            seen_eth = await eth.next_data()
        assert seen_btc["ticks"]["symbol"] == "BTCUSDT"
        assert seen_eth["ticks"]["symbol"] == "ETHUSDT"
        with pytest.raises(TimeoutError):
            await btc.next_data(timeout=0.3)
        with pytest.raises(TimeoutError):
            await eth.next_data(timeout=0.3)
    finally:
        await btc.close()
        await eth.close()


async def test_a_late_joiner_gets_the_latest_tick_per_symbol_first(mx: RealtimeServer) -> None:
    clock = Clock()
    query = "subscription ($s: [String!]!) { ticks(symbols: $s) { last } }"  # no symbol field
    first = await WsClient.open(mx.url)
    late: WsClient | None = None
    try:
        await first.subscribe(query, {"s": ["BTCUSDT", "ETHUSDT"]})
        await until(lambda: mx.state.registry.stream_count == 1)
        await asyncio.sleep(0.2)
        for symbol, last in [
            ("BTCUSDT", "95001.00"),
            ("ETHUSDT", "3401.00"),
            ("BTCUSDT", "95002.00"),
        ]:
            await mx.services.ingestor.ingest([tick(clock, symbol, last)])
            while (await first.next_data())["ticks"]["last"] != last:
                pass
        started = mx.state.registry.stats.streams_started
        late = await WsClient.open(mx.url)
        await late.subscribe(query, {"s": ["BTCUSDT", "ETHUSDT"]})
        replay = {(await late.next_data())["ticks"]["last"] for _ in range(2)}
        assert replay == {"95002.00", "3401.00"}
        await mx.services.ingestor.ingest([tick(clock, "ETHUSDT", "3402.00")])
        assert (await late.next_data())["ticks"] == {"last": "3402.00"}
        assert (await first.next_data())["ticks"] == {"last": "3402.00"}
        assert mx.state.registry.stats.streams_started == started  # no second execution
    finally:
        await first.close()
        if late is not None:
            await late.close()


async def test_scope_public_fields_by_role_and_private_fields_by_user(
    mx: RealtimeServer,
) -> None:
    token = await login_token(mx.app)
    auth = {"authorization": f"Bearer {token}"}
    anonymous = await WsClient.open(mx.url)
    trader = [await WsClient.open(mx.url, payload=auth) for _ in range(2)]
    try:
        for client in (anonymous, *trader):
            await client.subscribe(TICKS, {"symbols": ["BTCUSDT"]})
        # anonymous and TRADER ticks run separately; both traders share one
        await until(lambda: mx.state.registry.stream_count == 2)
        for client in trader:
            await client.subscribe("subscription { orderUpdates { id } }")
        await until(lambda: mx.state.registry.stream_count == 3)
        # an anonymous orderUpdates is refused, as without sharing
        await anonymous.subscribe("subscription { orderUpdates { id } }")
        message = await anonymous.receive()
        while message.get("id") != "2":
            message = await anonymous.receive()
        # graphql-transport-ws reports a refused subscription as an `error` message
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        for client in (anonymous, *trader):
            await client.close()


async def test_anonymous_ticks_refused_when_market_data_needs_a_user(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, ANONYMOUS_MARKET_DATA="false")
    async with realtime_server(settings) as server:
        clients = [await WsClient.open(server.url) for _ in range(2)]
        try:
            for client in clients:
                await client.subscribe(TICKS, {"symbols": ["BTCUSDT"]})
                message = await client.receive()
                assert message["type"] == "error", message
                assert message["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        finally:
            for client in clients:
                await client.close()


# --- slow and stalled sockets ----------------------------------------------------------


STALLED_SUBSCRIPTIONS = 3


async def test_a_stalled_client_never_delays_the_others_and_memory_stays_flat(
    sqlite_url: str,
) -> None:
    async with realtime_server(make_settings(sqlite_url), send_buffer=16384) as server:
        await _stalled_client_scenario(server)


async def _stalled_client_scenario(server: RealtimeServer) -> None:
    clock = Clock()
    # a client that subscribes (three times, to fill its buffers sooner) and never reads
    stalled = await open_raw(server.url, receive_buffer=4096)
    for n in range(STALLED_SUBSCRIPTIONS):
        payload = {"query": TICKS, "variables": {"symbols": SYMBOLS}}
        await stalled.send(json.dumps({"id": f"s{n}", "type": "subscribe", "payload": payload}))
    healthy = [await WsClient.open(server.url) for _ in range(20)]
    latest: list[dict[str, str]] = [{} for _ in healthy]

    async def read(index: int, client: WsClient) -> None:
        async for data in client.stream(timeout=60):
            latest[index][data["ticks"]["symbol"]] = data["ticks"]["last"]

    readers = [asyncio.create_task(read(i, c)) for i, c in enumerate(healthy)]
    try:
        for client in healthy:
            await client.subscribe(TICKS, {"symbols": SYMBOLS})
        await until(lambda: server.state.registry.stream_count == 1)
        await asyncio.sleep(0.3)
        gc.collect()
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        # 3,000 ticks over a few seconds, 750 per symbol
        expected: dict[str, str] = {}
        for batch in range(150):
            ticks = []
            for n in range(20):
                symbol = SYMBOLS[n % len(SYMBOLS)]
                expected[symbol] = price(symbol, batch * 20 + n + 1)
                ticks.append(tick(clock, symbol, expected[symbol]))
            await server.services.ingestor.ingest(ticks)
            await asyncio.sleep(0.02)
        ingested_at = asyncio.get_running_loop().time()
        # every healthy client ends with every symbol's latest tick, promptly
        await until(lambda: all(seen == expected for seen in latest), timeout=10)
        caught_up = asyncio.get_running_loop().time() - ingested_at
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - baseline
        tracemalloc.stop()
        # the stalled socket really is stalled, and holds at most one frame per symbol
        # and subscription (plus a ping)
        connections = [c for c in server.state.handlers if isinstance(c, Connection)]
        outboxes = [c.outbox for c in connections if c._outbox is not None]
        stuck = [len(outbox) for outbox in outboxes if len(outbox) > 0]
        assert len(stuck) == 1, [len(outbox) for outbox in outboxes]
        assert stuck[0] <= len(SYMBOLS) * STALLED_SUBSCRIPTIONS + 1
        assert server.state.registry.stats.frames_conflated > 0
        assert growth < 20 * 2**20, f"memory grew by {growth / 2**20:.1f} MiB"
        assert caught_up < 10
    finally:
        tracemalloc.stop()
        for reader in readers:
            reader.cancel()
        for client in healthy:
            await client.close()
        await stalled.close()


async def test_a_lossless_subscriber_that_falls_behind_is_closed_not_skipped(
    sqlite_url: str,
) -> None:
    options = RealtimeOptions(send_queue_size=16)
    settings = make_settings(sqlite_url)
    async with realtime_server(settings, options, send_buffer=16384) as server:
        token = await login_token(server.app)
        async with http_client(server.app, token) as http:
            placed = await execute(
                http,
                PLACE_ORDER,
                {
                    "input": {
                        "symbol": "600519.SH",
                        "side": "BUY",
                        "type": "LIMIT",
                        "quantity": "100",
                        "limitPrice": "1500.00",
                    }
                },
            )
        order_id = int(placed["placeOrder"]["order"]["id"])
        auth = {"authorization": f"Bearer {token}"}
        reader = await WsClient.open(server.url, payload=auth)
        stalled = await open_raw(server.url, payload=auth, receive_buffer=4096)
        try:
            await reader.subscribe(ORDER_UPDATES)
            await stalled.send(
                json.dumps({"id": "s", "type": "subscribe", "payload": {"query": ORDER_UPDATES}})
            )
            await until(lambda: server.state.registry.stream_count == 1)
            await asyncio.sleep(0.3)
            stats = server.state.registry.stats
            channel = order_channel(server.services.demo_user_id)
            sent = 0
            # publish in chunks the reader keeps up with, until the stalled one overflows
            while stats.slow_consumers == 0 and sent < 20_000:
                for _ in range(50):
                    await server.services.hub.publish(channel, encode_id_event("order", order_id))
                sent += 50
                for _ in range(50):
                    assert (await reader.next_data())["orderUpdates"]["id"] == str(order_id)
            assert stats.slow_consumers == 1
            # the reader is unaffected: it still gets every event
            for _ in range(50):
                await server.services.hub.publish(channel, encode_id_event("order", order_id))
            for _ in range(50):
                assert (await reader.next_data())["orderUpdates"]["id"] == str(order_id)
            # the stalled one, once it reads again, finds the close after what was sent
            code, reason = await closed_with(stalled)
            assert code == SLOW_CONSUMER_CLOSE
            assert reason.startswith("subscriber too slow")
        finally:
            await reader.close()
            await stalled.close()
