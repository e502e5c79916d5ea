"""HTTP guards: CSRF prevention, CORS, body limit, GraphQL over HTTP, request ids, access log."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.server.http_view import GRAPHQL_RESPONSE_JSON, wants_graphql_response_json
from tests.hardening.conftest import counting_statements
from tests.support.graphql import error_codes

QUERY = "{ exchanges }"
GRJ = {"accept": GRAPHQL_RESPONSE_JSON}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"CORS_ORIGINS": "https://app.example, https://admin.example", "MAX_BODY_BYTES": 2048}


# -- CSRF prevention ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("POST", {"content": QUERY, "headers": {"content-type": "text/plain"}}),
        ("POST", {"data": {"query": QUERY}}),  # application/x-www-form-urlencoded
        ("POST", {"content": json.dumps({"query": QUERY})}),  # no content type at all
        ("GET", {"params": {"query": QUERY}}),
        ("GET", {"params": {"query": QUERY}, "headers": {"x-apollo-operation-name": ""}}),
    ],
)
async def test_simple_requests_are_blocked(
    anonymous: httpx.AsyncClient, hardened_app: Starlette, method: str, kwargs: dict[str, Any]
) -> None:
    with counting_statements(hardened_app) as statements:
        response = await anonymous.request(method, "/graphql", **kwargs)
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert "Cross-Site Request Forgery" in response.json()["errors"][0]["message"]
    assert statements == []


@pytest.mark.parametrize(
    "headers",
    [
        {"apollo-require-preflight": "true"},
        {"x-apollo-operation-name": "Exchanges"},
        {"x-requested-with": "XMLHttpRequest"},
    ],
)
async def test_get_queries_pass_with_a_preflight_header(
    anonymous: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await anonymous.get("/graphql", params={"query": QUERY}, headers=headers)
    assert response.status_code == 200
    assert "errors" not in response.json()


async def test_json_posts_and_the_ide_pass(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/graphql", json={"query": QUERY})
    assert response.json()["data"]["exchanges"]
    page = await anonymous.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


async def test_mutations_are_refused_over_get(trader: httpx.AsyncClient) -> None:
    response = await trader.get(
        "/graphql",
        params={"query": "mutation { logout { ok } }"},
        headers={"apollo-require-preflight": "true"},
    )
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert "mutations are not allowed" in response.json()["errors"][0]["message"].lower()
    # the session is still alive
    me = await trader.post("/graphql", json={"query": "{ me { username } }"})
    assert me.json()["data"]["me"]["username"] == "demo"


@pytest.mark.parametrize("accept", [None, "application/json", GRAPHQL_RESPONSE_JSON])
async def test_subscriptions_over_plain_http_are_refused(
    anonymous: httpx.AsyncClient, accept: str | None
) -> None:
    # given a subscription POSTed without Accept: text/event-stream (so not graphql-sse)
    headers = {"accept": accept} if accept else {}
    response = await anonymous.post(
        "/graphql",
        json={"query": 'subscription { ticks(symbols: ["BTCUSDT"]) { last } }'},
        headers=headers,
    )
    # then a 400 that says where subscriptions work, not an internal error
    assert response.status_code == 400, response.text
    body = response.json()
    assert error_codes(body) == ["BAD_REQUEST"]
    message = body["errors"][0]["message"]
    assert "WebSocket" in message and "text/event-stream" in message
    # and a GET cannot smuggle one in either
    response = await anonymous.get(
        "/graphql",
        params={"query": 'subscription { ticks(symbols: ["BTCUSDT"]) { last } }'},
        headers={"apollo-require-preflight": "true"},
    )
    assert response.status_code == 400
    assert "WebSocket" in response.json()["errors"][0]["message"]


# -- CORS ---------------------------------------------------------------------------


async def test_cors_preflight(anonymous: httpx.AsyncClient) -> None:
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization",
    }
    allowed = await anonymous.options(
        "/graphql", headers={"origin": "https://app.example", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers

    refused = await anonymous.options(
        "/graphql", headers={"origin": "https://evil.example", **preflight}
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def test_cors_headers_on_responses(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(
        "/graphql", json={"query": QUERY}, headers={"origin": "https://admin.example"}
    )
    assert response.headers["access-control-allow-origin"] == "https://admin.example"
    assert "x-request-id" in response.headers["access-control-expose-headers"]


# -- body limit ---------------------------------------------------------------------


async def test_declared_body_over_the_limit(anonymous: httpx.AsyncClient) -> None:
    padding = " " * 3000
    response = await anonymous.post(
        "/graphql",
        content=json.dumps({"query": QUERY + padding}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert error_codes(response.json()) == ["PAYLOAD_TOO_LARGE"]


async def test_streamed_body_over_the_limit(anonymous: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ exchanges }", "padding": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    response = await anonymous.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert error_codes(response.json()) == ["PAYLOAD_TOO_LARGE"]


# -- GraphQL over HTTP ----------------------------------------------------------------


def test_accept_negotiation() -> None:
    assert wants_graphql_response_json(GRAPHQL_RESPONSE_JSON)
    assert wants_graphql_response_json(f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9")
    assert not wants_graphql_response_json(f"application/json, {GRAPHQL_RESPONSE_JSON};q=0.5")
    assert not wants_graphql_response_json("application/json")
    assert not wants_graphql_response_json("*/*")
    assert not wants_graphql_response_json(None)


async def test_graphql_response_json_success(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/graphql", json={"query": QUERY}, headers=GRJ)
    assert response.status_code == 200
    assert response.headers["content-type"] == GRAPHQL_RESPONSE_JSON
    assert response.json()["data"]["exchanges"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"query": "{ exchanges "}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        (
            {
                "query": "query($n: Int!) { symbols(first: $n) { edges { cursor } } }",
                "variables": {"n": "many"},
            },
            "BAD_USER_INPUT",
        ),
    ],
)
async def test_request_errors_are_400_without_data(
    anonymous: httpx.AsyncClient, payload: dict[str, Any], code: str
) -> None:
    response = await anonymous.post("/graphql", json=payload, headers=GRJ)
    assert response.status_code == 400
    assert response.headers["content-type"] == GRAPHQL_RESPONSE_JSON
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == [code]
    # the legacy media type keeps 200 and data: null
    legacy = await anonymous.post("/graphql", json=payload)
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == "application/json"
    assert legacy.json()["data"] is None


async def test_field_errors_are_200(trader: httpx.AsyncClient) -> None:
    response = await trader.post(
        "/graphql", json={"query": "{ orders(first: 101) { edges { cursor } } }"}, headers=GRJ
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["path"] == ["orders"]


async def test_view_http_errors_are_json(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_REQUEST"]


# -- request ids and the access log -------------------------------------------------------


async def test_request_id_in_and_out(
    anonymous: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    given = await anonymous.post(
        "/graphql", json={"query": QUERY}, headers={"x-request-id": "req-42"}
    )
    assert given.headers["x-request-id"] == "req-42"
    made_up = await anonymous.post("/graphql", json={"query": QUERY})
    assert re.fullmatch(r"[0-9a-f]{32}", made_up.headers["x-request-id"])
    hostile = await anonymous.post(
        "/graphql", json={"query": QUERY}, headers={"x-request-id": "a b\tc"}
    )
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])
    assert "request_id=req-42" in capsys.readouterr().out


async def test_access_log_line(
    trader: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    await trader.post(
        "/graphql",
        json={"query": "query Mine { orders(first: 1) { edges { cursor } } }"},
        headers={"x-request-id": "log-1"},
    )
    await trader.post("/graphql", json={"query": "{ nope }"}, headers={"x-request-id": "log-2"})
    out = capsys.readouterr().out
    ok = next(line for line in out.splitlines() if "request_id=log-1" in line and "status=" in line)
    for field in (
        "operation=Mine",
        "user_id=1",
        "status=200",
        "outcome=ok",
        "duration_ms=",
        "cost=1",
    ):
        assert field in ok, ok
    bad = [line for line in out.splitlines() if "request_id=log-2" in line]
    assert any("outcome=GRAPHQL_VALIDATION_FAILED" in line for line in bad)
    assert "Traceback" not in out
