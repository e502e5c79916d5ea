"""Users and auth: tokens, roles, revocation (HTTP and WebSocket), production secret."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.settings import Settings
from tests.conftest import http_client, login_token, make_settings, running_app, user_token
from tests.support.graphql import WsClient, error_codes, execute, post

MUTATION_REGISTER = """
mutation ($u: String!, $p: String!) {
  register(username: $u, password: $p) {
    tokens { accessToken refreshToken } user { username role } userErrors { field code }
  }
}
"""
MUTATION_LOGIN = """
mutation ($u: String!, $p: String!) {
  login(username: $u, password: $p) { tokens { accessToken refreshToken } userErrors { code } }
}
"""
MUTATION_REFRESH = """
mutation ($t: String!) {
  refreshToken(refreshToken: $t) { tokens { accessToken refreshToken } userErrors { code } }
}
"""
QUERY_ME = "{ me { username role account { balances { currency cash buyingPower } } } }"
QUERY_ORDERS = "{ orders(first: 5) { edges { node { id } } } }"
MUTATION_PLACE = """
mutation { placeOrder(input: {symbol: "000001.SZ", side: BUY, type: LIMIT, quantity: "100",
  limitPrice: "10.00"}) { order { id status } userErrors { code } } }
"""


async def test_register_login_and_me(anonymous_client: httpx.AsyncClient) -> None:
    data = await execute(anonymous_client, MUTATION_REGISTER, {"u": "alice", "p": "s3cret-pass"})
    payload = data["register"]
    assert payload["userErrors"] == []
    assert payload["user"] == {"username": "alice", "role": "TRADER"}
    token = payload["tokens"]["accessToken"]
    me = await execute(anonymous_client, QUERY_ME, headers={"authorization": f"Bearer {token}"})
    balances = {b["currency"]: b for b in me["me"]["account"]["balances"]}
    assert set(balances) == {"CNY", "USDT"}
    assert balances["CNY"]["cash"] == balances["CNY"]["buyingPower"] == "1000000.00"
    # the same username again is a conflict; weak passwords are refused
    again = await execute(anonymous_client, MUTATION_REGISTER, {"u": "alice", "p": "another-pw"})
    assert again["register"]["userErrors"] == [{"field": "username", "code": "CONFLICT"}]
    weak = await execute(anonymous_client, MUTATION_REGISTER, {"u": "bob", "p": "short"})
    assert weak["register"]["userErrors"] == [{"field": "password", "code": "OUT_OF_RANGE"}]


async def test_wrong_password_is_a_user_error(anonymous_client: httpx.AsyncClient) -> None:
    data = await execute(anonymous_client, MUTATION_LOGIN, {"u": "demo", "p": "wrong-password"})
    assert data["login"] == {"tokens": None, "userErrors": [{"code": "INVALID_CREDENTIALS"}]}


async def test_anonymous_may_read_market_data_but_not_trade(
    anonymous_client: httpx.AsyncClient,
) -> None:
    data = await execute(anonymous_client, '{ symbol(code: "BTCUSDT") { code } }')
    assert data["symbol"]["code"] == "BTCUSDT"
    for document in (QUERY_ORDERS, QUERY_ME, MUTATION_PLACE):
        body = await post(anonymous_client, document)
        assert error_codes(body) == ["UNAUTHENTICATED"], body


async def test_anonymous_market_data_can_be_switched_off(database_url: str) -> None:
    async with (
        running_app(make_settings(database_url, ANONYMOUS_MARKET_DATA="false")) as app,
        http_client(app, None) as anonymous,
    ):
        body = await post(anonymous, '{ symbol(code: "BTCUSDT") { code } }')
        assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_roles_decide_what_a_user_may_do(app: Starlette) -> None:
    viewer = await user_token(app, "viewer", Role.VIEWER)
    async with http_client(app, viewer) as client:
        assert error_codes(await post(client, MUTATION_PLACE)) == ["FORBIDDEN"]
        assert error_codes(await post(client, QUERY_ORDERS)) == ["FORBIDDEN"]
        data = await execute(client, '{ quote(symbol: "BTCUSDT") { last } }')
        assert data == {"quote": None}
    trader = await login_token(app)
    async with http_client(app, trader) as client:
        body = await post(
            client,
            'mutation { ingestTicks(ticks: [{symbol: "BTCUSDT", time: "2026-01-01T00:00:00Z", '
            'last: "1.00"}]) { accepted } }',
        )
        assert error_codes(body) == ["FORBIDDEN"]


async def test_bad_and_forged_tokens_are_unauthenticated(app: Starlette) -> None:
    for header in ("Bearer not-a-jwt", "Basic abc", "Bearer " + (await login_token(app))[:-4]):
        async with http_client(app, None) as client:
            client.headers["authorization"] = header
            body = await post(client, '{ symbol(code: "BTCUSDT") { code } }')
            assert error_codes(body) == ["UNAUTHENTICATED"], header


async def test_refresh_rotates_and_a_replayed_refresh_token_kills_the_session(
    anonymous_client: httpx.AsyncClient,
) -> None:
    login = await execute(anonymous_client, MUTATION_LOGIN, {"u": "demo", "p": "demo-password"})
    first = login["login"]["tokens"]
    rotated = (await execute(anonymous_client, MUTATION_REFRESH, {"t": first["refreshToken"]}))[
        "refreshToken"
    ]["tokens"]
    assert rotated["refreshToken"] != first["refreshToken"]
    # replaying the old refresh token is theft: the whole session is revoked
    replay = await execute(anonymous_client, MUTATION_REFRESH, {"t": first["refreshToken"]})
    assert replay["refreshToken"]["userErrors"] == [{"code": "INVALID_TOKEN"}]
    body = await post(
        anonymous_client, QUERY_ME, headers={"authorization": f"Bearer {rotated['accessToken']}"}
    )
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_logout_rejects_the_token_at_once(client: httpx.AsyncClient) -> None:
    assert (await execute(client, QUERY_ME))["me"]["username"] == "demo"
    assert (await execute(client, "mutation { logout { ok } }")) == {"logout": {"ok": True}}
    assert error_codes(await post(client, QUERY_ME)) == ["UNAUTHENTICATED"]


async def test_expired_tokens_are_rejected(database_url: str) -> None:
    settings = make_settings(database_url, ACCESS_TOKEN_TTL_SECONDS=1)
    async with running_app(settings) as app:
        token = await login_token(app)
        await asyncio.sleep(2.1)
        async with http_client(app, token) as client:
            body = await post(client, QUERY_ME)
            assert error_codes(body) == ["UNAUTHENTICATED"]
            assert body["errors"][0]["message"] == "token expired"


async def test_logout_closes_an_open_websocket(server: tuple[str, Starlette]) -> None:
    address, app = server
    token = await login_token(app)
    ws = await WsClient.open(
        f"ws://{address}/graphql", payload={"authorization": f"Bearer {token}"}
    )
    try:
        await ws.subscribe("subscription { orderUpdates { id status } }")
        async with http_client(app, token) as client:
            await execute(client, "mutation { logout { ok } }")
        with pytest.raises(Exception, match="4401"):
            await ws.receive(timeout=5)
    finally:
        await ws.close()


async def test_websocket_with_a_bad_token_is_refused(server: tuple[str, Starlette]) -> None:
    address, _app = server
    with pytest.raises(Exception, match="4403"):
        await WsClient.open(f"ws://{address}/graphql", payload={"authorization": "Bearer nope"})


async def test_anonymous_websocket_gets_market_data_only(server: tuple[str, Starlette]) -> None:
    address, _app = server
    ws = await WsClient.open(f"ws://{address}/graphql")
    try:
        await ws.subscribe("subscription { orderUpdates { id } }")
        message = await ws.receive()
        # graphql-transport-ws reports a refused subscription as an `error` message
        assert message["type"] == "error"
        assert message["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        await ws.close()


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(QUANTGRAPH_ENV="production")
    assert Settings(QUANTGRAPH_ENV="production", JWT_SECRET="x" * 32).environment == "production"
