"""Alerts through GraphQL: changes, refusals, isolation, and live evaluation of each kind.

The alert engine runs next to the app in this process (as the runtime runs it
under leadership), with the runtime's own engine switched off, so a test knows
when its alert is indexed and exactly one engine evaluates ticks — except where
a test runs two on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.alerts.engine import AlertEngine
from graphql_api.auth import Role
from graphql_api.market.indicators import rsi
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import alert_engine
from graphql_api.services import Services
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval
from tests.conftest import http_client, login_token, make_settings, user_token
from tests.support.graphql import WsClient, error_codes, execute, post

ALERT = (
    "alert { id kind mode status level percent windowSeconds interval indicator period note "
    "expiresAt fireCount symbol { code } }"
)
USER_ERRORS = "userErrors { field code }"
CREATE = f"""
mutation ($input: CreateAlertInput!) {{ createAlert(input: $input) {{ {ALERT} {USER_ERRORS} }} }}
"""
PAUSE = f"mutation ($id: ID!) {{ pauseAlert(id: $id) {{ {ALERT} {USER_ERRORS} }} }}"
RESUME = f"mutation ($id: ID!) {{ resumeAlert(id: $id) {{ {ALERT} {USER_ERRORS} }} }}"
DELETE = f"mutation ($id: ID!) {{ deleteAlert(id: $id) {{ deletedAlertId {USER_ERRORS} }} }}"
READ = """
query ($id: ID!) {
  alert(id: $id) { id status fireCount }
  alerts { edges { node { id status } } pageInfo { hasNextPage } }
  alertFirings(alertId: $id) {
    edges { node { id alertId kind price value message triggeredAt symbol { code } } }
  }
}
"""
FIRINGS = """
query { alertFirings(first: 100) { edges { node { id alertId price triggeredAt } } } }
"""
SUBSCRIBE = "subscription { alerts { id alertId kind price triggeredAt message } }"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        MATCHER_ENABLED="false",
        STRATEGY_ENGINE_ENABLED="false",
        ALERT_ENGINE_ENABLED="false",
        MAX_ALERTS_PER_USER=3,
    )


@pytest.fixture
async def engine(app: Starlette) -> AsyncIterator[AlertEngine]:
    async with running_engine(app.state.services) as running:
        yield running


@contextlib.asynccontextmanager
async def running_engine(services: Services) -> AsyncIterator[AlertEngine]:
    """An alert engine on ``services`` with test timings, running until the block ends."""
    engine = alert_engine(services, poll_interval=0.2, timer_interval=0.1)
    task = asyncio.create_task(engine.run())
    try:
        yield engine
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def tick(at: datetime, last: str) -> Tick:
    price = Decimal(last)
    return Tick("BTCUSDT", at, price, price, price, Decimal("0.1"))


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    payload = (await execute(client, CREATE, {"input": {"symbol": "BTCUSDT", **fields}}))[
        "createAlert"
    ]
    assert payload["userErrors"] == [], payload["userErrors"]
    created: dict[str, Any] = payload["alert"]
    return created


async def watched(engine: AlertEngine, *alert_ids: str) -> None:
    wanted = {int(alert_id) for alert_id in alert_ids}
    await until(lambda: wanted <= engine.watching(), "the engine did not index the alert")


async def until(condition: Any, what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def firings(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    """The firings once there are ``count`` (oldest first), after a moment for extras."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        found = [e["node"] for e in (await execute(client, FIRINGS))["alertFirings"]["edges"]]
        if len(found) >= count:
            break
        assert asyncio.get_running_loop().time() < deadline, f"only {len(found)} firings"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a duplicate would show up by now
    found = [e["node"] for e in (await execute(client, FIRINGS))["alertFirings"]["edges"]]
    return found[::-1]


async def ingest(services: Services, start: datetime, *prices: str) -> list[datetime]:
    """One tick per price, a second apart from ``start``, each batch on its own."""
    times = [start + timedelta(seconds=index) for index in range(len(prices))]
    for at, price in zip(times, prices, strict=True):
        await services.ingestor.ingest([tick(at, price)])
    return times


async def test_an_alert_is_created_paused_resumed_read_and_deleted(
    client: httpx.AsyncClient,
) -> None:
    expires = datetime.now(UTC) + timedelta(days=1)
    created = await create(
        client,
        symbol="btcusdt",
        kind="PRICE_CROSSES_ABOVE",
        level="100000",
        note="take profit",
        expiresAt=expires.isoformat(),
    )
    assert created | {"id": None} == {
        "id": None,
        "kind": "PRICE_CROSSES_ABOVE",
        "mode": "ONCE",
        "status": "ACTIVE",
        "level": "100000.00",
        "percent": None,
        "windowSeconds": None,
        "interval": None,
        "indicator": None,
        "period": None,
        "note": "take profit",
        "expiresAt": created["expiresAt"],
        "fireCount": 0,
        "symbol": {"code": "BTCUSDT"},
    }
    assert datetime.fromisoformat(created["expiresAt"]) == expires
    alert_id = created["id"]
    paused = (await execute(client, PAUSE, {"id": alert_id}))["pauseAlert"]
    assert paused["alert"]["status"] == "PAUSED"
    again = (await execute(client, PAUSE, {"id": alert_id}))["pauseAlert"]
    assert again == {"alert": None, "userErrors": [{"field": "id", "code": "NOT_ALLOWED"}]}
    resumed = (await execute(client, RESUME, {"id": alert_id}))["resumeAlert"]
    assert resumed["alert"]["status"] == "ACTIVE"
    read = await execute(client, READ, {"id": alert_id})
    assert read["alert"] == {"id": alert_id, "status": "ACTIVE", "fireCount": 0}
    assert read["alerts"]["edges"] == [{"node": {"id": alert_id, "status": "ACTIVE"}}]
    deleted = (await execute(client, DELETE, {"id": alert_id}))["deleteAlert"]
    assert deleted == {"deletedAlertId": alert_id, "userErrors": []}
    gone = await execute(client, READ, {"id": alert_id})
    assert gone["alert"] is None and gone["alerts"]["edges"] == []


async def test_bad_input_is_refused_with_typed_errors_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases: dict[str, dict[str, Any]] = {
        "no level": {"kind": "PRICE_CROSSES_ABOVE"},
        "foreign input": {"kind": "PRICE_CROSSES_BELOW", "level": "1", "percent": "5"},
        "negative level": {"kind": "PRICE_CROSSES_ABOVE", "level": "-5"},
        "move": {"kind": "PRICE_RISES_PERCENT", "percent": "0", "windowSeconds": 0},
        "indicator": {
            "kind": "INDICATOR_CROSSES_BELOW",
            "level": "130",
            "indicator": "RSI",
            "period": 1,
            "interval": "DAY_1",
        },
        "unknown symbol and past expiry": {
            "symbol": "NOPE",
            "kind": "PRICE_CROSSES_ABOVE",
            "level": "1",
            "expiresAt": past,
        },
    }
    refused = {}
    for name, fields in cases.items():
        data = await execute(client, CREATE, {"input": {"symbol": "BTCUSDT", **fields}})
        refused[name] = data["createAlert"]
    assert {name: payload["alert"] for name, payload in refused.items()} == dict.fromkeys(cases)
    assert {
        name: [(e["field"], e["code"]) for e in payload["userErrors"]]
        for name, payload in refused.items()
    } == {
        "no level": [("level", "REQUIRED")],
        "foreign input": [("percent", "INVALID_COMBINATION")],
        "negative level": [("level", "OUT_OF_RANGE")],
        "move": [("percent", "OUT_OF_RANGE"), ("windowSeconds", "OUT_OF_RANGE")],
        "indicator": [
            ("interval", "INVALID"),
            ("period", "OUT_OF_RANGE"),
            ("level", "OUT_OF_RANGE"),
        ],
        "unknown symbol and past expiry": [
            ("symbol", "UNKNOWN_SYMBOL"),
            ("expiresAt", "OUT_OF_RANGE"),
        ],
    }
    # the limit (3 here) counts alerts that can still fire
    for level in ("1", "2", "3"):
        await create(client, kind="PRICE_CROSSES_ABOVE", level=level)
    over = await execute(
        client,
        CREATE,
        {"input": {"symbol": "BTCUSDT", "kind": "PRICE_CROSSES_ABOVE", "level": "4"}},
    )
    assert over["createAlert"]["userErrors"] == [{"field": "symbol", "code": "OUT_OF_RANGE"}]
    listed = await execute(client, "{ alerts { edges { node { level } } } }")
    assert [e["node"]["level"] for e in listed["alerts"]["edges"]] == ["3.00", "2.00", "1.00"]
    # a malformed id is a request error
    assert error_codes(await post(client, DELETE, {"id": "x"})) == ["BAD_USER_INPUT"]


async def test_another_users_alerts_and_firings_do_not_exist(
    app: Starlette, engine: AlertEngine
) -> None:
    services: Services = app.state.services
    await services.ingestor.ingest([tick(datetime.now(UTC) - timedelta(seconds=5), "99000")])
    async with http_client(app, await login_token(app)) as alice:
        alert_id = (await create(alice, kind="PRICE_CROSSES_ABOVE", level="100000"))["id"]
        await watched(engine, alert_id)
        await services.ingestor.ingest([tick(datetime.now(UTC), "100000")])
        assert len(await firings(alice, 1)) == 1
    async with http_client(app, await user_token(app, "bob", Role.TRADER)) as bob:
        read = await execute(bob, READ, {"id": alert_id})
        changes = [
            (await execute(bob, PAUSE, {"id": alert_id}))["pauseAlert"],
            (await execute(bob, RESUME, {"id": alert_id}))["resumeAlert"],
        ]
        deleted = (await execute(bob, DELETE, {"id": alert_id}))["deleteAlert"]
        all_firings = await execute(bob, FIRINGS)
    assert read == {
        "alert": None,
        "alerts": {"edges": [], "pageInfo": {"hasNextPage": False}},
        "alertFirings": {"edges": []},
    }
    assert all_firings == {"alertFirings": {"edges": []}}
    for change in changes:
        assert change == {"alert": None, "userErrors": [{"field": "id", "code": "NOT_FOUND"}]}
    assert deleted == {"deletedAlertId": None, "userErrors": [{"field": "id", "code": "NOT_FOUND"}]}


async def test_a_one_shot_price_cross_fires_exactly_once_at_the_crossing_tick(
    app: Starlette, client: httpx.AsyncClient, engine: AlertEngine
) -> None:
    services: Services = app.state.services
    start = datetime.now(UTC) - timedelta(seconds=30)
    await ingest(services, start, "99500")
    above = await create(client, kind="PRICE_CROSSES_ABOVE", level="100000")
    below = await create(client, kind="PRICE_CROSSES_BELOW", level="99000")
    await watched(engine, above["id"], below["id"])
    # when the price goes up through 100000, back, up again, then down through 99000
    times = await ingest(
        services,
        start + timedelta(seconds=1),
        "99999.99",
        "100000.00",
        "100001.00",
        "99800.00",
        "100500.00",
        "98999.50",
    )
    # then each fired once, at the tick that crossed
    found = await firings(client, 2)
    assert [(f["alertId"], f["price"]) for f in found] == [
        (above["id"], "100000.00"),
        (below["id"], "98999.50"),
    ]
    assert [datetime.fromisoformat(f["triggeredAt"]) for f in found] == [times[1], times[5]]
    read = await execute(client, READ, {"id": above["id"]})
    assert read["alert"] == {"id": above["id"], "status": "FIRED", "fireCount": 1}
    node = read["alertFirings"]["edges"][0]["node"]
    assert node["kind"] == "PRICE_CROSSES_ABOVE"
    assert node["message"].startswith("BTCUSDT crossed above 100000")
    assert engine.watching() == set()


async def test_a_rearming_alert_fires_at_every_crossing_until_paused(
    app: Starlette, client: httpx.AsyncClient, engine: AlertEngine
) -> None:
    services: Services = app.state.services
    start = datetime.now(UTC) - timedelta(seconds=30)
    await ingest(services, start, "99500")
    alert = await create(client, kind="PRICE_CROSSES_ABOVE", level="100000", mode="REARM")
    await watched(engine, alert["id"])
    await ingest(services, start + timedelta(seconds=1), "100100", "99900", "100200", "100300")
    assert len(await firings(client, 2)) == 2
    # paused, it is no longer evaluated
    await execute(client, PAUSE, {"id": alert["id"]})
    await until(lambda: engine.watching() == set(), "the engine still watches it")
    await ingest(services, start + timedelta(seconds=10), "99000", "101000")
    assert len(await firings(client, 2)) == 2
    read = await execute(client, READ, {"id": alert["id"]})
    assert read["alert"] == {"id": alert["id"], "status": "PAUSED", "fireCount": 2}


async def test_a_move_within_the_window_fires(
    app: Starlette, client: httpx.AsyncClient, engine: AlertEngine
) -> None:
    services: Services = app.state.services
    alert = await create(client, kind="PRICE_FALLS_PERCENT", percent="2", windowSeconds=60)
    await watched(engine, alert["id"])
    start = datetime.now(UTC) - timedelta(seconds=30)
    # 100000 -> 98100 is -1.9 %; 98000 is -2 %
    times = await ingest(services, start, "100000", "99000", "98100", "98000", "97000")
    found = await firings(client, 1)
    assert [(f["price"], datetime.fromisoformat(f["triggeredAt"])) for f in found] == [
        ("98000.00", times[3])
    ]
    read = await execute(client, READ, {"id": alert["id"]})
    assert read["alertFirings"]["edges"][0]["node"]["value"] == "2.000000"


async def test_an_rsi_alert_fires_on_the_closed_bar_that_crosses_below_its_level(
    app: Starlette, client: httpx.AsyncClient, engine: AlertEngine
) -> None:
    services: Services = app.state.services
    # given 20 minutes of history: closes rising, so RSI(14) is high
    minute = KlineInterval.MINUTE_1
    base = floor_to_interval(datetime.now(UTC), minute) - timedelta(minutes=30)
    history = [95_000 + 50 * i for i in range(20)]
    for index, close in enumerate(history):
        await services.ingestor.ingest(
            [tick(base + timedelta(minutes=index, seconds=30), str(close))]
        )
    alert = await create(
        client,
        kind="INDICATOR_CROSSES_BELOW",
        indicator="RSI",
        period=14,
        interval="MINUTE_1",
        level="30",
    )
    await watched(engine, alert["id"])
    # when the following bars fall hard (each closed by the next minute's tick)
    falling = [history[-1] - 400 * (i + 1) for i in range(6)]
    closes = history + falling
    values = rsi([float(c) for c in closes], 14)
    crossing = next(i for i in range(20, len(closes)) if values[i - 1] > 30 >= values[i])
    for offset, close in enumerate([*falling, falling[-1]]):
        await services.ingestor.ingest(
            [tick(base + timedelta(minutes=20 + offset, seconds=30), str(close))]
        )
    # then it fired once, on the first bar whose RSI is at or below 30
    found = await firings(client, 1)
    assert len(found) == 1
    assert datetime.fromisoformat(found[0]["triggeredAt"]) == base + timedelta(minutes=crossing)
    assert Decimal(found[0]["price"]) == closes[crossing]
    read = await execute(client, READ, {"id": alert["id"]})
    value = Decimal(read["alertFirings"]["edges"][0]["node"]["value"])
    assert abs(value - Decimal(str(values[crossing]))) < Decimal("0.000001")


async def test_an_expired_alert_never_fires(
    app: Starlette, client: httpx.AsyncClient, engine: AlertEngine
) -> None:
    services: Services = app.state.services
    start = datetime.now(UTC) - timedelta(seconds=30)
    await ingest(services, start, "99500")
    expires = datetime.now(UTC) + timedelta(seconds=1)
    alert = await create(
        client, kind="PRICE_CROSSES_ABOVE", level="100000", expiresAt=expires.isoformat()
    )
    await watched(engine, alert["id"])
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    await ingest(services, start + timedelta(seconds=1), "101000")
    deadline = asyncio.get_running_loop().time() + 10
    while (read := await execute(client, READ, {"id": alert["id"]}))["alert"]["status"] != (
        "EXPIRED"
    ):
        assert asyncio.get_running_loop().time() < deadline, "the alert did not expire"
        await asyncio.sleep(0.05)
    await until(lambda: engine.watching() == set(), "the expired alert is still watched")
    assert read["alert"] == {"id": alert["id"], "status": "EXPIRED", "fireCount": 0}
    assert read["alertFirings"]["edges"] == []


async def test_two_evaluators_at_once_store_each_firing_once(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """A leader that has not yet noticed it lost its lock runs beside the new one."""
    services: Services = app.state.services
    start = datetime.now(UTC) - timedelta(seconds=30)
    await ingest(services, start, "99500")
    once = await create(client, kind="PRICE_CROSSES_ABOVE", level="100000")
    rearm = await create(client, kind="PRICE_CROSSES_BELOW", level="99000", mode="REARM")
    async with running_engine(services) as first, running_engine(services) as second:
        await watched(first, once["id"], rearm["id"])
        await watched(second, once["id"], rearm["id"])
        await ingest(services, start + timedelta(seconds=1), "100500", "98500", "99500", "98000")
        found = await firings(client, 3)
    assert sorted(f["alertId"] for f in found) == sorted([once["id"], rearm["id"], rearm["id"]])


async def test_the_alerts_subscription_delivers_the_users_firings(
    server: tuple[str, Starlette],
) -> None:
    address, app = server
    services: Services = app.state.services
    async with (
        running_engine(services) as engine,
        http_client(app, await login_token(app)) as client,
    ):
        start = datetime.now(UTC) - timedelta(seconds=30)
        await ingest(services, start, "99500")
        alert = await create(client, kind="PRICE_CROSSES_ABOVE", level="100000", mode="REARM")
        await watched(engine, alert["id"])
        ws = await WsClient.open(
            f"ws://{address}/graphql", payload={"authorization": f"Bearer {await login_token(app)}"}
        )
        try:
            channels = services.hub.channel_count
            await ws.subscribe(SUBSCRIBE)
            await until(lambda: services.hub.channel_count > channels, "no subscription")
            times = await ingest(
                services, start + timedelta(seconds=1), "100100", "99000", "100200"
            )
            received = [(await ws.next_data(timeout=10))["alerts"] for _ in range(2)]
        finally:
            await ws.close()
    assert [(r["alertId"], r["price"]) for r in received] == [
        (alert["id"], "100100.00"),
        (alert["id"], "100200.00"),
    ]
    assert [datetime.fromisoformat(r["triggeredAt"]) for r in received] == [times[0], times[2]]


async def test_extreme_inputs_are_user_errors_never_internal_ones(
    client: httpx.AsyncClient,
) -> None:
    cases: dict[str, dict[str, Any]] = {
        "huge level": {"kind": "PRICE_CROSSES_ABOVE", "level": "1" + "0" * 40},
        "fine level": {"kind": "PRICE_CROSSES_ABOVE", "level": "1." + "1" * 30},
        "huge window": {"kind": "PRICE_RISES_PERCENT", "percent": "5", "windowSeconds": 2**31 - 1},
        "huge percent": {"kind": "PRICE_FALLS_PERCENT", "percent": "5000", "windowSeconds": 60},
        "long note": {"kind": "PRICE_CROSSES_BELOW", "level": "1", "note": "n" * 10_000},
        "huge period": {
            "kind": "INDICATOR_CROSSES_ABOVE",
            "level": "1",
            "indicator": "EMA",
            "period": 2**31 - 1,
            "interval": "MINUTE_1",
        },
    }
    refused = {}
    for name, fields in cases.items():
        body = await post(client, CREATE, {"input": {"symbol": "BTCUSDT", **fields}})
        if "errors" in body:  # refused by the Decimal scalar before the resolver
            refused[name] = [("request", code) for code in error_codes(body)]
            continue
        refused[name] = [(e["field"], e["code"]) for e in body["data"]["createAlert"]["userErrors"]]
    assert refused == {
        "huge level": [("request", "BAD_USER_INPUT")],
        "fine level": [("request", "BAD_USER_INPUT")],
        "huge window": [("windowSeconds", "OUT_OF_RANGE")],
        "huge percent": [("percent", "OUT_OF_RANGE")],
        "long note": [("note", "OUT_OF_RANGE")],
        "huge period": [("period", "OUT_OF_RANGE")],
    }
    # a far expiry is fine
    far = await create(
        client, kind="PRICE_CROSSES_ABOVE", level="1", expiresAt="9999-12-31T23:59:59+00:00"
    )
    assert far["expiresAt"] == "9999-12-31T23:59:59+00:00"
    listed = await execute(client, "{ alerts { edges { node { id } } } }")
    assert [e["node"]["id"] for e in listed["alerts"]["edges"]] == [far["id"]]
