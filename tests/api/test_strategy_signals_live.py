"""A live strategy end to end: ticks in, a signal out over a WebSocket subscription.

A real uvicorn server; the strategy engine runs next to it in this process (as
the runtime runs it under leadership), with the runtime's own engine switched
off so exactly one engine evaluates bars.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from starlette.applications import Starlette

from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import strategy_engine
from graphql_api.services import Services
from graphql_api.strategies.definitions import StrategyDraft, StrategyKind
from graphql_api.strategies.engine import StrategyEngine
from graphql_api.strategies.lifecycle import start_strategy
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval
from tests.conftest import login_token, make_settings
from tests.support.graphql import WsClient

SUBSCRIPTION_SIGNALS = """
subscription ($strategyId: ID) {
  signals(strategyId: $strategyId) { id side price barTime reason strategy { id } symbol { code } }
}
"""

# SMA(2) vs SMA(3): crosses above on bar 5, below on bar 8.
CLOSES = [10, 9, 8, 7, 6, 9, 10, 8, 7]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, STRATEGY_ENGINE_ENABLED="false")


@pytest.fixture
async def engine(server: tuple[str, Starlette]) -> AsyncIterator[StrategyEngine]:
    _address, app = server
    running = strategy_engine(app.state.services, poll_interval=0.2, timer_interval=0.1)
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def price(level: int) -> Decimal:
    return Decimal(95_000 + 10 * level).quantize(Decimal("0.01"))


async def test_a_crossing_sequence_reaches_a_signals_subscriber(
    server: tuple[str, Starlette], engine: StrategyEngine
) -> None:
    address, app = server
    services: Services = app.state.services
    # given a running SMA_CROSS(2, 3) on BTCUSDT 1m bars, picked up by the engine
    created = await services.strategies.create(
        services.demo_user_id,
        StrategyDraft(
            name="live cross",
            kind=StrategyKind.SMA_CROSS,
            symbol="BTCUSDT",
            interval=KlineInterval.MINUTE_1,
            parameters={"fast": 2, "slow": 3},
        ),
    )
    assert created.strategy is not None
    strategy_id = created.strategy.id
    assert not (
        await start_strategy(services.sessions, services.outbox, services.demo_user_id, strategy_id)
    ).errors
    deadline = asyncio.get_running_loop().time() + 10
    while strategy_id not in engine.running():
        assert asyncio.get_running_loop().time() < deadline, "engine did not pick it up"
        await asyncio.sleep(0.02)
    # and a subscriber to its signals
    ws = await WsClient.open(
        f"ws://{address}/graphql", payload={"authorization": f"Bearer {await login_token(app)}"}
    )
    try:
        channels = services.hub.channel_count
        await ws.subscribe(SUBSCRIPTION_SIGNALS, {"strategyId": str(strategy_id)})
        while services.hub.channel_count == channels:  # until it listens on signals.<user>
            assert asyncio.get_running_loop().time() < deadline + 10, "no subscription"
            await asyncio.sleep(0.02)
        # when ticks of the past minutes arrive, bar by bar (each bar closes when the
        # next minute's first tick arrives)
        base = floor_to_interval(datetime.now(UTC), KlineInterval.MINUTE_1) - timedelta(
            minutes=len(CLOSES) + 2
        )
        for index, close in enumerate(CLOSES[: 5 + 2]):
            start = base + timedelta(minutes=index)
            await services.ingestor.ingest(
                [
                    Tick("BTCUSDT", start + timedelta(seconds=s), p, p, p, Decimal("0.1"))
                    for s, p in ((5, price(close + 1)), (45, price(close)))
                ]
            )
        # then the BUY of bar 5 arrives with its reason
        signal = (await ws.next_data(timeout=15))["signals"]
        assert signal["side"] == "BUY"
        assert signal["reason"] == "SMA(2) crossed above SMA(3)"
        assert signal["price"] == str(price(CLOSES[5]))
        assert datetime.fromisoformat(signal["barTime"]) == base + timedelta(minutes=5)
        assert signal["strategy"] == {"id": str(strategy_id)}
        assert signal["symbol"] == {"code": "BTCUSDT"}
    finally:
        await ws.close()
