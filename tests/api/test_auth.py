"""Users and auth: tokens, roles, revocation (HTTP and WebSocket), the signing secret,
usernames, passwords and names."""

from __future__ import annotations

import asyncio
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.auth.secret import SECRET_FILE_NAME, SecretConfigurationError
from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
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


async def test_a_username_no_user_can_have_is_just_a_wrong_sign_in(
    anonymous_client: httpx.AsyncClient,
) -> None:
    for name in ("de\x07mo", "demo\u202e", "x" * 10_000):
        data = await execute(anonymous_client, MUTATION_LOGIN, {"u": name, "p": "demo-password"})
        assert data["login"] == {"tokens": None, "userErrors": [{"code": "INVALID_CREDENTIALS"}]}
    # NUL is refused in every text argument before anything runs (tests/api/test_extreme_inputs)
    body = await post(anonymous_client, MUTATION_LOGIN, {"u": "de\x00mo", "p": "demo-password"})
    assert error_codes(body) == ["BAD_USER_INPUT"]


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


def test_production_refuses_a_missing_or_public_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(QUANTGRAPH_ENV="production")
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(JWT_SECRET="quantgraph-development-secret-change-me")
    assert Settings(QUANTGRAPH_ENV="production", JWT_SECRET="x" * 32).environment == "production"


# -- the signing secret and where the role comes from ---------------------------------------

PUBLISHED_SECRET = "quantgraph-development-secret-change-me"
INGEST = (
    'mutation { ingestTicks(ticks: [{symbol: "BTCUSDT", time: "2026-01-01T00:00:00Z", '
    'last: "1.00"}]) { accepted } }'
)


def forge(secret: str, **claims: Any) -> str:
    """A token as anyone holding ``secret`` could sign it."""
    now = datetime.now(UTC)
    payload = {
        "iss": "quantgraph",
        "sub": "1",
        "sid": "00000000-0000-0000-0000-000000000000",
        "typ": "access",
        "jti": "forged",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


async def test_a_token_signed_with_the_published_secret_is_refused(app: Starlette) -> None:
    demo = services_of(app).demo_user_id
    token = forge(PUBLISHED_SECRET, sub=str(demo), role="ADMIN")
    async with http_client(app, token) as client:
        assert error_codes(await post(client, QUERY_ME)) == ["UNAUTHENTICATED"]


async def test_the_embedded_default_makes_a_private_secret_and_keeps_it(tmp_path: Path) -> None:
    # given: a fresh data directory and no JWT_SECRET
    database = tmp_path / "data" / "quantgraph.db"
    settings = make_settings(f"sqlite+aiosqlite:///{database}")
    assert settings.jwt_secret is None
    # when: the server starts twice
    async with running_app(settings) as app:
        token = await login_token(app)
    secret_file = database.parent / SECRET_FILE_NAME
    async with running_app(settings) as app, http_client(app, token) as client:
        # then: the secret is the owner's alone, and tokens survive the restart
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert len(secret_file.read_text().strip()) >= 32
        assert (await execute(client, QUERY_ME))["me"]["username"] == "demo"


async def test_a_data_directory_secret_readable_by_others_stops_start_up(tmp_path: Path) -> None:
    database = tmp_path / "quantgraph.db"
    (tmp_path / SECRET_FILE_NAME).write_text("s" * 64)
    (tmp_path / SECRET_FILE_NAME).chmod(0o644)
    with pytest.raises(SecretConfigurationError, match="chmod 600"):
        async with open_services(make_settings(f"sqlite+aiosqlite:///{database}")):
            pass


@pytest.mark.parametrize(
    "overrides",
    [
        {"DATABASE_URL": "postgresql+asyncpg://quantgraph@127.0.0.1:1/quantgraph"},
        {"DATABASE_URL": "sqlite+aiosqlite:///:memory:"},
    ],
)
async def test_a_shared_database_needs_a_configured_secret(overrides: dict[str, Any]) -> None:
    settings = Settings(**overrides)
    with pytest.raises(SecretConfigurationError, match="JWT_SECRET is not set"):
        async with open_services(settings):
            pass


async def test_the_role_comes_from_the_database_not_the_token(database_url: str) -> None:
    # given: a VIEWER, and a server whose secret the attacker has somehow learnt
    settings = make_settings(database_url, JWT_SECRET="s" * 40)
    async with running_app(settings) as app:
        viewer_token = await user_token(app, "viewer", Role.VIEWER)
        # when: the VIEWER edits their token to say ADMIN
        edited = forge("s" * 40, **{**claims_of(viewer_token), "role": "ADMIN"})
        async with http_client(app, edited) as client:
            # then: the database still says VIEWER
            assert error_codes(await post(client, INGEST)) == ["FORBIDDEN"]
            assert (await execute(client, QUERY_ME))["me"]["role"] == "VIEWER"


async def test_a_role_change_applies_to_the_next_request(database_url: str) -> None:
    settings = make_settings(database_url, ROLE_CACHE_SECONDS=3600)
    async with running_app(settings) as app:
        token = await user_token(app, "promoted", Role.VIEWER)
        async with http_client(app, token) as client:
            assert error_codes(await post(client, INGEST)) == ["FORBIDDEN"]
            await services_of(app).auth.set_role("Promoted", Role.FEED)
            assert await execute(client, INGEST) == {"ingestTicks": {"accepted": 1}}


async def test_a_token_for_a_missing_user_is_unauthenticated(database_url: str) -> None:
    settings = make_settings(database_url, JWT_SECRET="s" * 40)
    async with running_app(settings) as app:
        gone = await user_token(app, "leaving", Role.TRADER)
        assert await services_of(app).auth.remove_user("leaving")
        never = forge("s" * 40, **{**claims_of(gone), "sub": "987654"})
        for token in (gone, never):
            async with http_client(app, token) as client:
                for document in (QUERY_ME, MUTATION_PLACE, QUERY_ORDERS):
                    body = await post(client, document)
                    assert error_codes(body) == ["UNAUTHENTICATED"], body
                    assert body["errors"][0]["message"] == "user no longer exists"


async def test_websocket_connection_init_checks_the_user(server: tuple[str, Starlette]) -> None:
    address, app = server
    url = f"ws://{address}/graphql"
    # a forged token is refused at connection_init
    forged = forge(PUBLISHED_SECRET, sub=str(services_of(app).demo_user_id), role="ADMIN")
    with pytest.raises(Exception, match="4403"):
        await WsClient.open(url, payload={"authorization": f"Bearer {forged}"})
    # a removed user's token is refused too
    gone = await user_token(app, "ws-leaving", Role.TRADER)
    assert await services_of(app).auth.remove_user("ws-leaving")
    with pytest.raises(Exception, match="4403"):
        await WsClient.open(url, payload={"authorization": f"Bearer {gone}"})
    # a role change closes an open socket (4401): the client signs in again for the new role
    token = await user_token(app, "ws-viewer", Role.VIEWER)
    ws = await WsClient.open(url, payload={"authorization": f"Bearer {token}"})
    try:
        await services_of(app).auth.set_role("ws-viewer", Role.TRADER)
        with pytest.raises(Exception, match="4401"):
            await ws.receive(timeout=5)
    finally:
        await ws.close()


# -- usernames, passwords and names -----------------------------------------------------------


async def test_usernames_are_case_insensitive(anonymous_client: httpx.AsyncClient) -> None:
    first = await execute(anonymous_client, MUTATION_REGISTER, {"u": "Carol", "p": "s3cret-pass"})
    assert first["register"]["user"] == {"username": "Carol", "role": "TRADER"}
    for name in ("carol", "CAROL", "\uff23arol"):  # the last is a full-width C
        again = await execute(anonymous_client, MUTATION_REGISTER, {"u": name, "p": "another-pw"})
        assert again["register"]["userErrors"] in (
            [{"field": "username", "code": "CONFLICT"}],
            [{"field": "username", "code": "INVALID"}],  # not in the new-name alphabet
        ), name
    for name in ("carol", "CAROL", "\uff23arol", "Demo", "DEMO"):
        password = "demo-password" if name.lower() == "demo" else "s3cret-pass"
        login = await execute(anonymous_client, MUTATION_LOGIN, {"u": name, "p": password})
        assert login["login"]["userErrors"] == [], name


@pytest.mark.parametrize(
    ("password", "code"),
    [
        (" " * 8, "INVALID"),
        ("\t\n  \u3000  \t", "INVALID"),
        ("password\x07suffix", "INVALID"),
        ("pass\u202eword", "INVALID"),
        ("x" * 257, "OUT_OF_RANGE"),
    ],
)
async def test_unusable_passwords_are_refused(
    anonymous_client: httpx.AsyncClient, password: str, code: str
) -> None:
    data = await execute(anonymous_client, MUTATION_REGISTER, {"u": "erin", "p": password})
    assert data["register"]["userErrors"] == [{"field": "password", "code": code}]


@pytest.mark.parametrize(
    "name", ["bell\x07name", "evil\u202egpj", "line\n", "zero\u200bwidth", "iso\u2066late"]
)
async def test_names_refuse_control_and_invisible_characters(
    client: httpx.AsyncClient, anonymous_client: httpx.AsyncClient, name: str
) -> None:
    # given: the same rule for every name the API stores
    register = await execute(anonymous_client, MUTATION_REGISTER, {"u": name, "p": "s3cret-pass"})
    assert register["register"]["userErrors"] == [{"field": "username", "code": "INVALID"}]
    strategy = await execute(
        client,
        """mutation ($n: String!) { createStrategy(input: {name: $n, kind: SMA_CROSS,
           symbol: "BTCUSDT", interval: MINUTE_1}) {
           strategy { id } userErrors { field code } } }""",
        {"n": name},
    )
    assert strategy["createStrategy"] == {
        "strategy": None,
        "userErrors": [{"field": "name", "code": "INVALID"}],
    }
    order = await execute(
        client,
        """mutation ($c: String!) { placeOrder(input: {symbol: "BTCUSDT", side: BUY,
           type: MARKET, quantity: "0.01", clientOrderId: $c}) {
           order { id } userErrors { field code } } }""",
        {"c": name},
    )
    assert order["placeOrder"] == {
        "order": None,
        "userErrors": [{"field": "clientOrderId", "code": "INVALID"}],
    }


async def test_a_token_of_the_wrong_type_says_so_in_english(
    anonymous_client: httpx.AsyncClient,
) -> None:
    login = await execute(anonymous_client, MUTATION_LOGIN, {"u": "demo", "p": "demo-password"})
    access = login["login"]["tokens"]["accessToken"]
    refresh = await post(
        anonymous_client,
        "mutation ($t: String!) { refreshToken(refreshToken: $t) { userErrors { message } } }",
        {"t": access},
    )
    assert refresh["data"]["refreshToken"]["userErrors"] == [{"message": "not a refresh token"}]
    body = await post(
        anonymous_client,
        QUERY_ME,
        headers={"authorization": "Bearer " + login["login"]["tokens"]["refreshToken"]},
    )
    assert body["errors"][0]["message"] == "not an access token"
