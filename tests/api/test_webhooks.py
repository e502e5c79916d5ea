"""Webhooks through GraphQL and a real local receiver: signed deliveries of alert firings
and strategy signals, retries with backoff until the receiver recovers, timeouts, the
dead letter, the delivery log, isolation, and the refusal of addresses inside the
network (SSRF)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from graphql_api.auth import Role
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import alert_engine, strategy_engine
from graphql_api.services import Services
from graphql_api.strategies.definitions import StrategyDraft, StrategyKind
from graphql_api.strategies.lifecycle import start_strategy
from graphql_api.webhooks.addresses import AddressNotAllowedError, resolve_allowed
from graphql_api.webhooks.dispatcher import WebhookDispatcher
from graphql_api.webhooks.signing import verify
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval
from tests.conftest import http_client, login_token, make_settings, running_app, user_token
from tests.support.graphql import execute
from tests.support.servers import free_port
from tests.support.uvicorn_server import serving

REGISTER = """
mutation ($url: String!, $events: [WebhookEvent!]!) {
  registerWebhook(url: $url, events: $events) {
    webhook { id url events } secret userErrors { field code message }
  }
}
"""
DELETE = "mutation ($id: ID!) { deleteWebhook(id: $id) { deletedWebhookId userErrors { code } } }"
LOG = """
query ($id: ID) {
  webhooks { id url }
  webhookDeliveries(webhookId: $id) {
    edges { node { id webhookId event status attempts lastStatusCode lastError payload } }
  }
}
"""
CREATE_ALERT = """
mutation ($level: Decimal!) {
  createAlert(input: {symbol: "BTCUSDT", kind: PRICE_CROSSES_ABOVE, level: $level}) {
    alert { id } userErrors { code }
  }
}
"""


@dataclass
class Receiver:
    """A local HTTP endpoint that answers from a script: a status, or a delay (seconds,
    negative) before answering 200; the last entry repeats."""

    script: list[float] = field(default_factory=lambda: [200])
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.received.append((dict(request.headers), body))
        step = self.script[min(len(self.received), len(self.script)) - 1]
        if step < 0:
            await asyncio.sleep(-step)
            return Response(status_code=200)
        return Response(status_code=int(step))


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with serving(server, stop_timeout=10):
        receiver.url = f"http://127.0.0.1:{port}/hook"
        yield receiver


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        MATCHER_ENABLED="false",
        STRATEGY_ENGINE_ENABLED="false",
        ALERT_ENGINE_ENABLED="false",
        WEBHOOKS_ENABLED="false",
        WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
        WEBHOOK_TIMEOUT_SECONDS="0.5",
        WEBHOOK_MAX_ATTEMPTS="3",
        WEBHOOK_BACKOFF_SECONDS="0.1",
    )


@contextlib.asynccontextmanager
async def running_engines(
    services: Services, *, allow_private: bool = True
) -> AsyncIterator[Services]:
    """The alert engine and a webhook dispatcher, as leaders run them."""
    dispatcher = WebhookDispatcher(
        sessions=services.sessions,
        hub=services.hub,
        allow_private=allow_private,
        timeout=services.settings.webhook_timeout_seconds,
        max_attempts=services.settings.webhook_max_attempts,
        backoff=services.settings.webhook_backoff_seconds,
        max_backoff=services.settings.webhook_max_backoff_seconds,
        poll_interval=0.2,
        activity=services.activity,
    )
    tasks = [
        asyncio.create_task(alert_engine(services, poll_interval=0.2, timer_interval=0.1).run()),
        asyncio.create_task(dispatcher.run()),
    ]
    try:
        yield services
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def engines(app: Starlette) -> AsyncIterator[Services]:
    async with running_engines(app.state.services) as services:
        yield services


async def register(client: httpx.AsyncClient, url: str) -> tuple[str, str]:
    payload = (await execute(client, REGISTER, {"url": url, "events": ["ALERT_FIRED"]}))[
        "registerWebhook"
    ]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["webhook"]["id"], payload["secret"]


async def fire_an_alert(client: httpx.AsyncClient, services: Services) -> None:
    """An alert above 100000, and ticks that cross it (after the engine indexed it)."""
    start = datetime.now(UTC) - timedelta(seconds=20)
    await services.ingestor.ingest([tick(start, "99000")])
    created = (await execute(client, CREATE_ALERT, {"level": "100000"}))["createAlert"]
    assert created["userErrors"] == []
    await asyncio.sleep(0.5)  # the engine's next read indexes it
    await services.ingestor.ingest([tick(start + timedelta(seconds=1), "100500")])


def tick(at: datetime, last: str) -> Tick:
    price = Decimal(last)
    return Tick("BTCUSDT", at, price, price, price, Decimal(1))


async def log_until(
    client: httpx.AsyncClient, webhook_id: str, status: str, timeout: float = 15
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        edges = (await execute(client, LOG, {"id": webhook_id}))["webhookDeliveries"]["edges"]
        if edges and edges[0]["node"]["status"] == status:
            node: dict[str, Any] = edges[0]["node"]
            return node
        assert asyncio.get_running_loop().time() < deadline, f"not {status}: {edges}"
        await asyncio.sleep(0.05)


async def test_a_firing_is_posted_signed_and_logged_as_delivered(
    client: httpx.AsyncClient, engines: Services
) -> None:
    async with receiving(Receiver()) as receiver:
        webhook_id, secret = await register(client, receiver.url)
        assert secret.startswith("whsec_")
        await fire_an_alert(client, engines)
        delivered = await log_until(client, webhook_id, "DELIVERED")
    assert delivered["attempts"] == 1 and delivered["lastStatusCode"] == 200
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    # the signature verifies with the secret, and not with another or over another body
    signature = headers["x-quantgraph-signature"]
    now = int(time.time())
    assert verify(secret, signature, body, now=now)
    assert not verify(secret + "x", signature, body, now=now)
    assert not verify(secret, signature, body + b" ", now=now)
    assert not verify(secret, signature, body, now=now + 3600)  # too old: a replay
    assert headers["x-quantgraph-event"] == "ALERT_FIRED"
    assert headers["x-quantgraph-delivery"] == delivered["id"]
    sent = json.loads(body)
    assert sent["event"] == "ALERT_FIRED"
    assert sent["alertFiring"]["price"] == "100500"
    assert sent["alertFiring"]["message"].startswith("BTCUSDT crossed above 100000")
    assert json.loads(delivered["payload"]) == sent
    # the secret is shown once: reads never show it
    listed = await execute(client, "{ webhooks { id url events } }")
    assert listed == {
        "webhooks": [{"id": webhook_id, "url": receiver.url, "events": ["ALERT_FIRED"]}]
    }


async def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(
    client: httpx.AsyncClient, engines: Services
) -> None:
    async with receiving(Receiver(script=[500, 503, 200])) as receiver:
        webhook_id, _ = await register(client, receiver.url)
        await fire_an_alert(client, engines)
        delivered = await log_until(client, webhook_id, "DELIVERED")
    assert delivered["attempts"] == 3 and delivered["lastStatusCode"] == 200
    assert delivered["lastError"] is None
    ids = {headers["x-quantgraph-delivery"] for headers, _ in receiver.received}
    assert len(receiver.received) == 3 and ids == {delivered["id"]}


async def test_a_receiver_that_times_out_ends_in_the_dead_letter(
    client: httpx.AsyncClient, engines: Services
) -> None:
    async with receiving(Receiver(script=[-2])) as receiver:
        webhook_id, _ = await register(client, receiver.url)
        await fire_an_alert(client, engines)
        dead = await log_until(client, webhook_id, "DEAD")
        await asyncio.sleep(0.5)
    assert dead["attempts"] == 3
    assert dead["lastStatusCode"] is None
    assert dead["lastError"] == "timed out after 0.5 s"
    assert len(receiver.received) == 3  # no attempt after the last one
    # and the operator's metrics count it
    activity = engines.activity
    assert (activity.webhooks_dead, activity.webhook_attempts_failed) == (1, 3)


async def test_webhooks_are_refused_where_they_could_reach_inside_the_network(
    app: Starlette,
) -> None:
    services: Services = app.state.services
    # the operator setting is off in production
    services.webhooks.allow_private = False
    try:
        async with http_client(app, await user_token(app, "eve", Role.TRADER)) as eve:
            refused = {}
            for url in (
                "http://127.0.0.1:8000/hook",
                "http://localhost/hook",
                "http://169.254.169.254/latest/meta-data",
                "http://[::1]/",
                "http://[::ffff:10.0.0.1]/",
                "http://192.168.1.10/",
                "ftp://example.com/",
                "http://user:pw@example.com/",
                "not a url",
                "http://no-such-host.invalid/",
            ):
                payload = (await execute(eve, REGISTER, {"url": url, "events": ["ALERT_FIRED"]}))[
                    "registerWebhook"
                ]
                refused[url] = (payload["webhook"], payload["secret"], payload["userErrors"][0])
            listed = await execute(eve, "{ webhooks { id } }")
    finally:
        services.webhooks.allow_private = True
    assert {url: (w, s, e["code"]) for url, (w, s, e) in refused.items()} == {
        "http://127.0.0.1:8000/hook": (None, None, "NOT_ALLOWED"),
        "http://localhost/hook": (None, None, "NOT_ALLOWED"),
        "http://169.254.169.254/latest/meta-data": (None, None, "NOT_ALLOWED"),
        "http://[::1]/": (None, None, "NOT_ALLOWED"),
        "http://[::ffff:10.0.0.1]/": (None, None, "NOT_ALLOWED"),
        "http://192.168.1.10/": (None, None, "NOT_ALLOWED"),
        "ftp://example.com/": (None, None, "INVALID"),
        "http://user:pw@example.com/": (None, None, "INVALID"),
        "not a url": (None, None, "INVALID"),
        "http://no-such-host.invalid/": (None, None, "INVALID"),
    }
    assert listed == {"webhooks": []}
    # and the dispatcher checks again before every delivery (DNS answers change)
    with pytest.raises(AddressNotAllowedError):
        await resolve_allowed("http://localhost:1/", allow_private=False)
    assert await resolve_allowed("http://93.184.215.14/", allow_private=False)


async def test_a_delivery_to_a_refused_address_goes_straight_to_the_dead_letter(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Registered while allowed; the dispatcher (allowance off) refuses it at delivery."""
    services: Services = app.state.services
    async with receiving(Receiver()) as receiver:
        webhook_id, _ = await register(client, receiver.url)
        async with running_engines(services, allow_private=False):
            await fire_an_alert(client, services)
            dead = await log_until(client, webhook_id, "DEAD")
    assert dead["attempts"] == 1
    assert "may not reach" in dead["lastError"]
    assert receiver.received == []


async def test_another_users_webhooks_and_deliveries_do_not_exist(
    app: Starlette, client: httpx.AsyncClient, engines: Services
) -> None:
    async with receiving(Receiver()) as receiver:
        webhook_id, _ = await register(client, receiver.url)
        await fire_an_alert(client, engines)
        await log_until(client, webhook_id, "DELIVERED")
    async with http_client(app, await user_token(app, "mallory", Role.TRADER)) as mallory:
        seen = await execute(mallory, LOG, {"id": webhook_id})
        all_seen = await execute(mallory, LOG, {"id": None})
        deleted = (await execute(mallory, DELETE, {"id": webhook_id}))["deleteWebhook"]
    assert seen == {"webhooks": [], "webhookDeliveries": {"edges": []}}
    assert all_seen == {"webhooks": [], "webhookDeliveries": {"edges": []}}
    assert deleted == {"deletedWebhookId": None, "userErrors": [{"code": "NOT_FOUND"}]}
    # the owner still has it, and deleting it takes its log with it
    mine = (await execute(client, DELETE, {"id": webhook_id}))["deleteWebhook"]
    assert mine == {"deletedWebhookId": webhook_id, "userErrors": []}
    assert await execute(client, LOG, {"id": None}) == {
        "webhooks": [],
        "webhookDeliveries": {"edges": []},
    }


async def test_a_strategy_signal_is_posted_to_a_webhook_that_wants_signals(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    services: Services = app.state.services
    created = await services.strategies.create(
        services.demo_user_id,
        StrategyDraft(
            name="hooked cross",
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
    engine = strategy_engine(services, poll_interval=0.2, timer_interval=0.1)
    async with receiving(Receiver()) as receiver, running_engines(services):
        payload = (
            await execute(client, REGISTER, {"url": receiver.url, "events": ["STRATEGY_SIGNAL"]})
        )["registerWebhook"]
        webhook_id = payload["webhook"]["id"]
        running = asyncio.create_task(engine.run())
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while strategy_id not in engine.running():
                assert asyncio.get_running_loop().time() < deadline, "engine did not pick it up"
                await asyncio.sleep(0.02)
            # SMA(2) vs SMA(3) on these closes crosses above on bar 5
            closes = [10, 9, 8, 7, 6, 9, 10]
            base = floor_to_interval(datetime.now(UTC), KlineInterval.MINUTE_1) - timedelta(
                minutes=len(closes) + 2
            )
            for index, close in enumerate(closes):
                price = Decimal(95_000 + 10 * close)
                at = base + timedelta(minutes=index, seconds=30)
                await services.ingestor.ingest(
                    [Tick("BTCUSDT", at, price, price, price, Decimal(1))]
                )
            delivered = await log_until(client, webhook_id, "DELIVERED")
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert headers["x-quantgraph-event"] == "STRATEGY_SIGNAL"
    assert headers["x-quantgraph-delivery"] == delivered["id"]
    sent = json.loads(body)["signal"]
    assert (sent["strategyId"], sent["side"], sent["reason"]) == (
        str(strategy_id),
        "BUY",
        "SMA(2) crossed above SMA(3)",
    )
    assert datetime.fromisoformat(sent["barTime"]) == base + timedelta(minutes=5)


async def test_deliveries_wait_in_the_table_for_a_dispatcher_and_resume_after_a_restart(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    services: Services = app.state.services
    async with receiving(Receiver()) as receiver:
        webhook_id, _ = await register(client, receiver.url)
        # given a firing while no dispatcher runs (the leader is down)
        engine = asyncio.create_task(
            alert_engine(services, poll_interval=0.2, timer_interval=0.1).run()
        )
        try:
            await fire_an_alert(client, services)
            pending = await log_until(client, webhook_id, "PENDING")
        finally:
            engine.cancel()
            await asyncio.gather(engine, return_exceptions=True)
        assert pending["attempts"] == 0 and receiver.received == []
        # when a dispatcher starts (a new leader, or the restarted process)
        async with running_engines(services):
            delivered = await log_until(client, webhook_id, "DELIVERED")
    # then the waiting delivery goes out, once
    assert delivered["id"] == pending["id"] and delivered["attempts"] == 1
    assert len(receiver.received) == 1


PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id } userErrors { code } }
}
"""


async def test_each_fill_is_posted_once_to_a_webhook_that_wants_fills(database_url: str) -> None:
    # the whole app, matcher and webhook dispatcher included, as a leader runs them
    settings = make_settings(
        database_url,
        STRATEGY_ENGINE_ENABLED="false",
        ALERT_ENGINE_ENABLED="false",
        WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
        WEBHOOK_BACKOFF_SECONDS="0.1",
    )
    async with (
        running_app(settings) as app,
        http_client(app, await login_token(app)) as client,
        receiving(Receiver()) as receiver,
    ):
        services: Services = app.state.services
        payload = (
            await execute(client, REGISTER, {"url": receiver.url, "events": ["ORDER_FILLED"]})
        )["registerWebhook"]
        webhook_id = payload["webhook"]["id"]
        await services.ingestor.ingest([tick(datetime.now(UTC), "95000.00")])  # a price
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
        placed = (await execute(client, PLACE, {"input": order}))["placeOrder"]["order"]["id"]
        await services.ingestor.ingest([tick(datetime.now(UTC), "95000.00")])
        delivered = await log_until(client, webhook_id, "DELIVERED")
        await asyncio.sleep(0.5)  # nothing more comes
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert headers["x-quantgraph-event"] == "ORDER_FILLED"
    assert headers["x-quantgraph-delivery"] == delivered["id"]
    fill = json.loads(body)["fill"]
    assert fill == {
        "orderId": placed,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.01",
        "price": "95000.00",
        "commission": fill["commission"],
        "time": fill["time"],
        "orderStatus": "FILLED",
        "filledQuantity": "0.01",
    }
    assert Decimal(fill["commission"]) > 0
