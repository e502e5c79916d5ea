"""Subscriptions through a real uvicorn server and real WebSocket clients."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from starlette.applications import Starlette

from graphql_api.realtime.channels import signal_channel
from graphql_api.realtime.events import encode_id_event
from graphql_api.services import Services
from storage import models
from storage.timeseries import Tick
from tests.conftest import login_token
from tests.support.graphql import WsClient

SUBSCRIPTION_TICKS = """
subscription ($symbols: [String!]!) { ticks(symbols: $symbols) { symbol last time } }
"""

SUBSCRIPTION_SIGNALS = """
subscription ($strategyId: ID) {
  signals(strategyId: $strategyId) { id side price reason strategy { id name } symbol { code } }
}
"""


def make_tick(symbol: str, last: str, seconds_ago: float = 0) -> Tick:
    price = Decimal(last)
    return Tick(
        symbol, datetime.now(UTC) - timedelta(seconds=seconds_ago), price, price, price, Decimal(1)
    )


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_ticks_subscription_sends_snapshot_then_live_ticks(
    server: tuple[str, Starlette], protocol: str
) -> None:
    address, app = server
    services: Services = app.state.services
    # given a stored tick for BTCUSDT and none for ETHUSDT
    await services.ingestor.ingest([make_tick("BTCUSDT", "95000.00", seconds_ago=5)])
    ws = await WsClient.open(f"ws://{address}/graphql", protocol=protocol)
    try:
        # when subscribing to both
        await ws.subscribe(SUBSCRIPTION_TICKS, {"symbols": ["BTCUSDT", "ethusdt"]})
        # then the first message is the snapshot of the known one
        first = await ws.next_data()
        assert first["ticks"]["symbol"] == "BTCUSDT" and first["ticks"]["last"] == "95000.00"
        # and new ticks of either symbol follow, in order
        await services.ingestor.ingest([make_tick("ETHUSDT", "3400.00")])
        await services.ingestor.ingest([make_tick("BTCUSDT", "95001.00")])
        received = [(await ws.next_data())["ticks"] for _ in range(2)]
        assert [(t["symbol"], t["last"]) for t in received] == [
            ("ETHUSDT", "3400.00"),
            ("BTCUSDT", "95001.00"),
        ]
    finally:
        await ws.close()


async def test_ticks_subscription_rejects_unknown_symbols(server: tuple[str, Starlette]) -> None:
    address, _app = server
    ws = await WsClient.open(f"ws://{address}/graphql")
    try:
        await ws.subscribe(SUBSCRIPTION_TICKS, {"symbols": ["NOPE"]})
        message = await ws.receive()
        # an execution error: a `next` carrying the error, then `complete`
        assert message["type"] == "next"
        assert message["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert (await ws.receive())["type"] == "complete"
    finally:
        await ws.close()


async def test_signals_arrive_with_fresh_nested_data(server: tuple[str, Starlette]) -> None:
    address, app = server
    services: Services = app.state.services
    # given a strategy and a subscriber to its signals
    now = datetime.now(UTC)
    async with services.sessions() as session:
        strategy = models.Strategy(
            user_id=services.demo_user_id,
            name="before",
            kind="SMA_CROSS",
            symbol_code="BTCUSDT",
            interval="1m",
            parameters={"fast": 5, "slow": 20},
            status="RUNNING",
            auto_trade=False,
            created_at=now,
            updated_at=now,
        )
        session.add(strategy)
        await session.commit()
    ws = await WsClient.open(
        f"ws://{address}/graphql", payload={"authorization": f"Bearer {await login_token(app)}"}
    )

    async def publish_signal(price: str, minute: int) -> None:
        async with services.sessions() as session:
            signal = models.Signal(
                strategy_id=strategy.id,
                symbol_code="BTCUSDT",
                side="BUY",
                price=Decimal(price),
                bar_time=now.replace(second=0, microsecond=0) + timedelta(minutes=minute),
                reason="SMA(5) crossed above SMA(20)",
                order_id=None,
                created_at=now,
            )
            session.add(signal)
            await session.commit()
        await services.hub.publish(
            signal_channel(services.demo_user_id),
            encode_id_event("signal", signal.id, strategyId=strategy.id, symbol="BTCUSDT"),
        )

    try:
        await ws.subscribe(SUBSCRIPTION_SIGNALS, {"strategyId": str(strategy.id)})
        await asyncio.sleep(0.2)  # let the subscription attach to the hub
        # when a signal is published through the bus
        await publish_signal("95000.00", 0)
        first = (await ws.next_data())["signals"]
        # and the strategy is renamed before the next signal
        async with services.sessions() as session:
            row = await session.get(models.Strategy, strategy.id)
            assert row is not None
            row.name = "after"
            await session.commit()
        await publish_signal("95100.00", 1)
        second = (await ws.next_data())["signals"]
    finally:
        await ws.close()
    # then both arrive, and the second carries the new name (no stale loader cache)
    assert (first["price"], first["strategy"]["name"]) == ("95000.00", "before")
    assert (second["price"], second["strategy"]["name"]) == ("95100.00", "after")
    assert first["reason"] == "SMA(5) crossed above SMA(20)"
