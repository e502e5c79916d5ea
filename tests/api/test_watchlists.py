"""Watchlists through GraphQL: changes, reads with prices in one request, isolation,
permissions, and the live quotes subscription following edits over a real WebSocket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.platform.settings import Settings
from graphql_api.services import Services
from storage.timeseries import Tick
from tests.api.test_dataloaders import counting_statements
from tests.conftest import http_client, login_token, make_settings, user_token
from tests.support.graphql import WsClient, error_codes, execute, post

WATCHLIST = "watchlist { id name symbols { code } }"
USER_ERRORS = "userErrors { field code }"
CREATE = f"""
mutation ($name: String!, $symbols: [String!]) {{
  createWatchlist(name: $name, symbols: $symbols) {{ {WATCHLIST} {USER_ERRORS} }}
}}
"""
RENAME = f"""
mutation ($id: ID!, $name: String!) {{
  renameWatchlist(id: $id, name: $name) {{ {WATCHLIST} {USER_ERRORS} }}
}}
"""
ADD = f"""
mutation ($id: ID!, $symbols: [String!]!, $position: Int) {{
  addToWatchlist(id: $id, symbols: $symbols, position: $position) {{ {WATCHLIST} {USER_ERRORS} }}
}}
"""
REMOVE = f"""
mutation ($id: ID!, $symbols: [String!]!) {{
  removeFromWatchlist(id: $id, symbols: $symbols) {{ {WATCHLIST} {USER_ERRORS} }}
}}
"""
REORDER = f"""
mutation ($id: ID!, $symbols: [String!]!) {{
  reorderWatchlist(id: $id, symbols: $symbols) {{ {WATCHLIST} {USER_ERRORS} }}
}}
"""
DELETE = f"""
mutation ($id: ID!) {{ deleteWatchlist(id: $id) {{ deletedWatchlistId {USER_ERRORS} }} }}
"""
READ = """
query ($id: ID!) {
  watchlist(id: $id) { id name symbols { code name quote { last time } } }
  watchlists { id name symbols { code } }
}
"""
QUOTES = """
subscription ($id: ID!) { watchlistQuotes(id: $id) { symbol onWatchlist position quote { last } } }
"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    """No matcher, engines or webhook dispatcher: their leader heartbeats would run SQL
    meanwhile."""
    return make_settings(
        database_url,
        MATCHER_ENABLED="false",
        STRATEGY_ENGINE_ENABLED="false",
        ALERT_ENGINE_ENABLED="false",
        WEBHOOKS_ENABLED="false",
    )


def tick(symbol: str, last: str, seconds_ago: float = 0) -> Tick:
    price = Decimal(last)
    when = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return Tick(symbol, when, price, price, price, Decimal(1))


def symbols_of(payload: dict[str, Any]) -> list[str]:
    assert payload["userErrors"] == [], payload["userErrors"]
    return [symbol["code"] for symbol in payload["watchlist"]["symbols"]]


async def create(client: httpx.AsyncClient, name: str, *symbols: str) -> str:
    created = (await execute(client, CREATE, {"name": name, "symbols": list(symbols)}))[
        "createWatchlist"
    ]
    assert created["userErrors"] == [], created["userErrors"]
    watchlist_id: str = created["watchlist"]["id"]
    return watchlist_id


async def test_a_watchlist_is_created_edited_read_and_deleted(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    services: Services = app.state.services
    await services.ingestor.ingest([tick("BTCUSDT", "95000.00", seconds_ago=1)])
    # given a list made with lower-case codes
    watchlist_id = await create(client, "Crypto", "btcusdt", "ETHUSDT")
    # when it is edited
    added = await execute(
        client, ADD, {"id": watchlist_id, "symbols": ["600519.sh"], "position": 1}
    )
    assert symbols_of(added["addToWatchlist"]) == ["BTCUSDT", "600519.SH", "ETHUSDT"]
    reordered = await execute(
        client, REORDER, {"id": watchlist_id, "symbols": ["ETHUSDT", "BTCUSDT", "600519.SH"]}
    )
    assert symbols_of(reordered["reorderWatchlist"]) == ["ETHUSDT", "BTCUSDT", "600519.SH"]
    removed = await execute(client, REMOVE, {"id": watchlist_id, "symbols": ["600519.SH"]})
    assert symbols_of(removed["removeFromWatchlist"]) == ["ETHUSDT", "BTCUSDT"]
    renamed = await execute(client, RENAME, {"id": watchlist_id, "name": "Coins"})
    assert renamed["renameWatchlist"]["watchlist"]["name"] == "Coins"
    # then one request reads it with its symbols and their prices, in list order
    read = await execute(client, READ, {"id": watchlist_id})
    assert read["watchlist"]["name"] == "Coins"
    assert [
        (s["code"], s["quote"] and s["quote"]["last"]) for s in read["watchlist"]["symbols"]
    ] == [
        ("ETHUSDT", None),
        ("BTCUSDT", "95000.00"),
    ]
    assert read["watchlists"] == [
        {
            "id": watchlist_id,
            "name": "Coins",
            "symbols": [{"code": "ETHUSDT"}, {"code": "BTCUSDT"}],
        }
    ]
    # and deleting it makes it gone
    deleted = await execute(client, DELETE, {"id": watchlist_id})
    assert deleted["deleteWatchlist"] == {"deletedWatchlistId": watchlist_id, "userErrors": []}
    gone = await execute(client, READ, {"id": watchlist_id})
    assert gone == {"watchlist": None, "watchlists": []}


async def test_a_refused_change_is_reported_and_changes_nothing(client: httpx.AsyncClient) -> None:
    watchlist_id = await create(client, "Crypto", "BTCUSDT")
    await create(client, "Stocks")
    refused = {
        "add": await execute(
            client, ADD, {"id": watchlist_id, "symbols": ["ETHUSDT", "NOPE", "600519.SH"]}
        ),
        "create": await execute(client, CREATE, {"name": "", "symbols": ["NOPE"]}),
        "rename": await execute(client, RENAME, {"id": watchlist_id, "name": "stocks"}),
        "reorder": await execute(client, REORDER, {"id": watchlist_id, "symbols": []}),
        "remove": await execute(client, REMOVE, {"id": "999999", "symbols": ["BTCUSDT"]}),
    }
    assert {what: next(iter(data.values())) for what, data in refused.items()} == {
        "add": {
            "watchlist": None,
            "userErrors": [{"field": "symbols.1", "code": "UNKNOWN_SYMBOL"}],
        },
        "create": {
            "watchlist": None,
            "userErrors": [
                {"field": "name", "code": "OUT_OF_RANGE"},
                {"field": "symbols.0", "code": "UNKNOWN_SYMBOL"},
            ],
        },
        "rename": {"watchlist": None, "userErrors": [{"field": "name", "code": "CONFLICT"}]},
        "reorder": {"watchlist": None, "userErrors": [{"field": "symbols", "code": "INVALID"}]},
        "remove": {"watchlist": None, "userErrors": [{"field": "id", "code": "NOT_FOUND"}]},
    }
    read = await execute(client, READ, {"id": watchlist_id})
    assert [(w["name"], w["symbols"]) for w in read["watchlists"]] == [
        ("Crypto", [{"code": "BTCUSDT"}]),
        ("Stocks", []),
    ]
    # a malformed id is a request error, not a user error
    body = await post(client, DELETE, {"id": "not-an-id"})
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_another_users_watchlists_do_not_exist(app: Starlette) -> None:
    async with http_client(app, await login_token(app)) as alice:
        watchlist_id = await create(alice, "Alice's", "BTCUSDT")
    async with http_client(app, await user_token(app, "bob", Role.TRADER)) as bob:
        read = await execute(bob, READ, {"id": watchlist_id})
        changes = [
            await execute(bob, RENAME, {"id": watchlist_id, "name": "mine"}),
            await execute(bob, ADD, {"id": watchlist_id, "symbols": ["ETHUSDT"]}),
            await execute(bob, REMOVE, {"id": watchlist_id, "symbols": ["BTCUSDT"]}),
            await execute(bob, REORDER, {"id": watchlist_id, "symbols": ["BTCUSDT"]}),
        ]
        deleted = await execute(bob, DELETE, {"id": watchlist_id})
        # bob may use the same name: names are per user
        await create(bob, "Alice's")
    assert read == {"watchlist": None, "watchlists": []}
    for change in changes:
        assert next(iter(change.values())) == {
            "watchlist": None,
            "userErrors": [{"field": "id", "code": "NOT_FOUND"}],
        }
    assert deleted["deleteWatchlist"] == {
        "deletedWatchlistId": None,
        "userErrors": [{"field": "id", "code": "NOT_FOUND"}],
    }
    async with http_client(app, await login_token(app)) as alice:
        mine = await execute(alice, READ, {"id": watchlist_id})
    assert mine["watchlist"] == {
        "id": watchlist_id,
        "name": "Alice's",
        "symbols": [
            {"code": "BTCUSDT", "name": mine["watchlist"]["symbols"][0]["name"], "quote": None}
        ],
    }


async def test_watchlists_need_a_signed_in_user_of_any_role(
    anonymous_client: httpx.AsyncClient, app: Starlette
) -> None:
    body = await post(anonymous_client, "{ watchlists { id } }")
    assert error_codes(body) == ["UNAUTHENTICATED"]
    body = await post(anonymous_client, CREATE, {"name": "x"})
    assert error_codes(body) == ["UNAUTHENTICATED"]
    # a VIEWER reads market data, so it may keep lists of symbols too
    async with http_client(app, await user_token(app, "viewer", Role.VIEWER)) as viewer:
        watchlist_id = await create(viewer, "Mine", "BTCUSDT")
        read = await execute(viewer, READ, {"id": watchlist_id})
    assert read["watchlist"]["symbols"][0]["code"] == "BTCUSDT"


@pytest.mark.parametrize("lists", [1, 6])
async def test_lists_symbols_and_quotes_take_a_constant_number_of_statements(
    client: httpx.AsyncClient, app: Starlette, lists: int
) -> None:
    # given lists over many symbols, with prices
    services: Services = app.state.services
    codes = [spec.code for spec in services.catalog.all()]
    await services.ingestor.ingest([tick(code, "10.00", seconds_ago=1) for code in codes[:8]])
    for n in range(lists):
        await create(client, f"list {n}", *codes[n : n + 10])
    # when reading every list with its symbols and their quotes
    query = "{ watchlists { name symbols { code name tickSize quote { last time } } } }"
    await execute(client, query)  # the caller's role is cached from here on
    with counting_statements(services) as counted:
        data = await execute(client, query)
    # (the event relay's poll of its table may fall in between: not this request's)
    statements = [s for s in counted if "event_outbox" not in s]
    # then: the lists with their entries, the symbols, the quotes — however many lists
    assert len(data["watchlists"]) == lists
    assert all(len(w["symbols"]) == 10 for w in data["watchlists"])
    assert any(s["quote"] for w in data["watchlists"] for s in w["symbols"])
    print(f"\nwatchlists={lists}: {len(statements)} SQL statements")
    assert len(statements) <= 3, statements


async def test_quotes_subscription_follows_edits_without_resubscribing(
    server: tuple[str, Starlette],
) -> None:
    address, app = server
    services: Services = app.state.services
    token = await login_token(app)
    await services.ingestor.ingest([tick("BTCUSDT", "95000.00", seconds_ago=2)])
    await services.ingestor.ingest([tick("600519.SH", "1500.00", seconds_ago=2)])
    async with http_client(app, token) as client:
        watchlist_id = await create(client, "Crypto", "BTCUSDT", "ETHUSDT")
        ws = await WsClient.open(
            f"ws://{address}/graphql", payload={"authorization": f"Bearer {token}"}
        )
        try:
            # when subscribing: each symbol in list order, with its latest tick
            await ws.subscribe(QUOTES, {"id": watchlist_id})
            first = [(await ws.next_data())["watchlistQuotes"] for _ in range(2)]
            assert first == [
                {
                    "symbol": "BTCUSDT",
                    "onWatchlist": True,
                    "position": 0,
                    "quote": {"last": "95000.00"},
                },
                {"symbol": "ETHUSDT", "onWatchlist": True, "position": 1, "quote": None},
            ]
            # a symbol added through the API comes with its price, then its live ticks
            await execute(client, ADD, {"id": watchlist_id, "symbols": ["600519.SH"]})
            added = (await ws.next_data())["watchlistQuotes"]
            assert added == {
                "symbol": "600519.SH",
                "onWatchlist": True,
                "position": 2,
                "quote": {"last": "1500.00"},
            }
            await services.ingestor.ingest([tick("600519.SH", "1501.00")])
            live = (await ws.next_data())["watchlistQuotes"]
            assert (live["symbol"], live["quote"]) == ("600519.SH", {"last": "1501.00"})
            # a removed one is announced once; its ticks stop, the others' go on
            await execute(client, REMOVE, {"id": watchlist_id, "symbols": ["BTCUSDT"]})
            removal = [(await ws.next_data())["watchlistQuotes"] for _ in range(3)]
            assert removal[0] == {
                "symbol": "BTCUSDT",
                "onWatchlist": False,
                "position": None,
                "quote": None,
            }
            assert [(q["symbol"], q["position"]) for q in removal[1:]] == [
                ("ETHUSDT", 0),
                ("600519.SH", 1),
            ]
            await services.ingestor.ingest([tick("BTCUSDT", "95100.00")])
            await services.ingestor.ingest([tick("ETHUSDT", "3400.00")])
            after = (await ws.next_data())["watchlistQuotes"]
            assert (after["symbol"], after["quote"]) == ("ETHUSDT", {"last": "3400.00"})
            # deleting the list completes the subscription
            await execute(client, DELETE, {"id": watchlist_id})
            assert (await ws.receive())["type"] == "complete"
        finally:
            await ws.close()


async def test_quotes_of_another_users_list_are_not_found(server: tuple[str, Starlette]) -> None:
    address, app = server
    async with http_client(app, await login_token(app)) as alice:
        watchlist_id = await create(alice, "Alice's", "BTCUSDT")
    bob_token = await user_token(app, "bob", Role.TRADER)
    ws = await WsClient.open(
        f"ws://{address}/graphql", payload={"authorization": f"Bearer {bob_token}"}
    )
    try:
        for wanted in (watchlist_id, "999999"):
            await ws.subscribe(QUOTES, {"id": wanted})
            message = await ws.receive()
            assert message["type"] == "next"
            assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            assert (await ws.receive())["type"] == "complete"
    finally:
        await ws.close()
