"""User B can never read, change or subscribe to user A's objects — nor learn they exist."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.realtime.channels import signal_channel
from graphql_api.realtime.events import encode_id_event
from graphql_api.services import Services
from storage import models
from storage.timeseries import Tick
from tests.conftest import http_client, login_token, user_token
from tests.support.graphql import WsClient, execute

PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } userErrors { field code } }
}
"""
CREATE_STRATEGY = """
mutation { createStrategy(input: {name: "A's", kind: SMA_CROSS, symbol: "BTCUSDT",
  parameters: {fast: 5, slow: 20}}) { strategy { id } userErrors { code } } }
"""


async def test_another_users_objects_do_not_exist(app: Starlette) -> None:
    # given user A with an order and a strategy
    async with http_client(app, await login_token(app)) as alice:
        strategy_id = (await execute(alice, CREATE_STRATEGY))["createStrategy"]["strategy"]["id"]
        order_id = (
            await execute(
                alice,
                PLACE,
                {
                    "input": {
                        "symbol": "000001.SZ",
                        "side": "BUY",
                        "type": "LIMIT",
                        "quantity": "100",
                        "limitPrice": "11.00",
                        "strategyId": strategy_id,
                    }
                },
            )
        )["placeOrder"]["order"]["id"]
    # when user B asks for them in every way
    async with http_client(app, await user_token(app, "bob", Role.TRADER)) as bob:
        reads = await execute(
            bob,
            """
            query ($o: ID!, $s: ID!) {
              order(id: $o) { id }
              strategy(id: $s) { id }
              orders(first: 10) { edges { node { id } } }
              strategies(first: 10) { edges { node { id } } }
              me { account { trades(first: 10) { edges { node { id } } } positions { quantity } } }
            }
            """,
            {"o": order_id, "s": strategy_id},
        )
        cancel = await execute(
            bob,
            "mutation ($id: ID!) { cancelOrder(id: $id) { order { id } userErrors { code } } }",
            {"id": order_id},
        )
        update = await execute(
            bob,
            'mutation ($id: ID!) { updateStrategy(input: {id: $id, name: "mine"}) '
            "{ strategy { id } userErrors { code } } }",
            {"id": strategy_id},
        )
        delete = await execute(
            bob,
            "mutation ($id: ID!) { deleteStrategy(id: $id) "
            "{ deletedStrategyId userErrors { code } } }",
            {"id": strategy_id},
        )
        attribute = await execute(
            bob,
            PLACE,
            {
                "input": {
                    "symbol": "000001.SZ",
                    "side": "BUY",
                    "type": "LIMIT",
                    "quantity": "100",
                    "limitPrice": "11.00",
                    "strategyId": strategy_id,
                }
            },
        )
    # then B sees nothing and every change answers NOT_FOUND, exactly as for a missing id
    assert reads["order"] is None and reads["strategy"] is None
    assert reads["orders"]["edges"] == [] and reads["strategies"]["edges"] == []
    assert reads["me"]["account"] == {"trades": {"edges": []}, "positions": []}
    assert cancel["cancelOrder"] == {"order": None, "userErrors": [{"code": "NOT_FOUND"}]}
    assert update["updateStrategy"] == {"strategy": None, "userErrors": [{"code": "NOT_FOUND"}]}
    assert delete["deleteStrategy"] == {
        "deletedStrategyId": None,
        "userErrors": [{"code": "NOT_FOUND"}],
    }
    assert attribute["placeOrder"]["userErrors"] == [{"field": "strategyId", "code": "NOT_FOUND"}]
    # and A's objects are untouched
    services: Services = app.state.services
    async with services.sessions() as session:
        order = await session.get(models.Order, int(order_id))
        strategy = await session.get(models.Strategy, int(strategy_id))
    assert order is not None and order.status == "NEW"
    assert strategy is not None and strategy.name == "A's"


async def test_subscriptions_deliver_only_your_own_events(server: tuple[str, Starlette]) -> None:
    address, app = server
    services: Services = app.state.services
    alice_token = await login_token(app)
    bob_token = await user_token(app, "bob", Role.TRADER)
    alice = await WsClient.open(
        f"ws://{address}/graphql", payload={"authorization": f"Bearer {alice_token}"}
    )
    bob = await WsClient.open(
        f"ws://{address}/graphql", payload={"authorization": f"Bearer {bob_token}"}
    )
    try:
        for ws in (alice, bob):
            await ws.subscribe("subscription { orderUpdates { id status filledQuantity } }")
            await ws.subscribe("subscription { signals { id } }")
        await asyncio.sleep(0.3)
        # A's order: placed, then filled by the matcher on the next tick, then B's own event
        await services.ingestor.ingest([_tick("3.00")])
        async with http_client(app, alice_token) as client:
            placed = await execute(
                client,
                PLACE,
                {
                    "input": {
                        "symbol": "XRPUSDT",
                        "side": "BUY",
                        "type": "MARKET",
                        "quantity": "10.0",
                    }
                },
            )
        order_id = placed["placeOrder"]["order"]["id"]
        await asyncio.sleep(0.2)
        await services.ingestor.ingest([_tick("3.01")])
        # A signal of A's published on A's channel
        await services.hub.publish(
            signal_channel(services.demo_user_id),
            encode_id_event("signal", 999, strategyId=1, symbol="X"),
        )
        updates = [(await alice.next_data())["orderUpdates"] for _ in range(2)]
        assert [(u["id"], u["status"]) for u in updates] == [
            (order_id, "NEW"),
            (order_id, "FILLED"),
        ]
        assert updates[1]["filledQuantity"] == "10.0"
        # B received nothing of A's
        async with http_client(app, bob_token) as client:
            mine = await execute(
                client,
                PLACE,
                {
                    "input": {
                        "symbol": "000001.SZ",
                        "side": "BUY",
                        "type": "LIMIT",
                        "quantity": "100",
                        "limitPrice": "11.00",
                    }
                },
            )
        first_for_bob = (await bob.next_data())["orderUpdates"]
        assert first_for_bob["id"] == mine["placeOrder"]["order"]["id"]
    finally:
        await alice.close()
        await bob.close()


def _tick(price: str) -> Tick:
    value = Decimal(price)
    return Tick("XRPUSDT", datetime.now(UTC), value, value, value, Decimal(1000))
