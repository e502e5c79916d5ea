"""A JSON ``POST`` through the view's short path answers exactly as Strawberry's ``run``.

Each request is sent twice to the same hardened app: once as it is (a plain JSON
``POST`` takes :meth:`GraphQLOverHTTP.run_json_post`) and once with the short path
switched off, so Strawberry's general ``run`` answers. Status, content type and
body must be the same, for good operations, field errors, request errors, every
kind of malformed body, and the spec's ``application/graphql-response+json``.
Requests that are not plain JSON ``POST`` bodies must not take the short path.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Scope

from graphql_api.server.http_view import GraphQLOverHTTP

JSON = "application/json"
GRAPHQL_JSON = "application/graphql-response+json"

SYMBOL_BY_VARIABLE = "query Q($c: String!) { symbol(code: $c) { code } }"
BODIES: list[tuple[str, Any]] = [
    ("typename", {"query": "{ __typename }"}),
    ("query", {"query": '{ symbol(code: "BTCUSDT") { code name } }'}),
    ("variables", {"query": SYMBOL_BY_VARIABLE, "variables": {"c": "ETH"}, "operationName": "Q"}),
    ("mutation needs sign-in", {"query": 'mutation { cancelOrder(id: "1") { order { id } } }'}),
    ("parse error", {"query": "{ symbol("}),
    ("validation error", {"query": "{ nope }"}),
    ("bad variable", {"query": SYMBOL_BY_VARIABLE, "variables": {"c": 5}}),
    ("unknown operation", {"query": "query A { __typename }", "operationName": "B"}),
    ("two operations, no name", {"query": "query A { __typename } query B { __typename }"}),
    ("subscription", {"query": 'subscription { ticks(symbol: "BTCUSDT") { last } }'}),
    ("no query", {"variables": {}}),
    ("query not a string", {"query": 5}),
    ("variables not an object", {"query": "{ __typename }", "variables": [1]}),
    ("extensions not an object", {"query": "{ __typename }", "extensions": "x"}),
    ("batch", [{"query": "{ __typename }"}]),
    ("not an object", b"true"),
    ("not JSON", b"{query"),
    ("not UTF-8", b'{"query": "\xff"}'),
    ("too deep", b"[" * 100_000 + b"]" * 100_000),
    ("empty", b""),
]  # fmt: skip


async def _answer(
    client: httpx.AsyncClient, body: bytes, content_type: str, accept: str | None
) -> tuple[int, str, Any]:
    headers = {"content-type": content_type}
    if accept is not None:
        headers["accept"] = accept
    response = await client.post("/graphql", content=body, headers=headers)
    return response.status_code, response.headers["content-type"], response.text


@pytest.mark.parametrize("accept", [None, JSON, GRAPHQL_JSON])
@pytest.mark.parametrize(("name", "payload"), BODIES, ids=[name for name, _ in BODIES])
async def test_the_short_path_answers_as_strawberrys_run(
    anonymous: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    payload: Any,
    accept: str | None,
) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    taken: list[bool] = []
    decide = GraphQLOverHTTP._is_plain_json_post

    def recorded(self: GraphQLOverHTTP[Any, Any], scope: Scope) -> bool:
        taken.append(decide(self, scope))
        return taken[-1]

    monkeypatch.setattr(GraphQLOverHTTP, "_is_plain_json_post", recorded)
    short = await _answer(anonymous, body, "application/json; charset=utf-8", accept)
    assert taken == [True], "a plain JSON POST takes the short path"
    monkeypatch.setattr(GraphQLOverHTTP, "_is_plain_json_post", lambda self, scope: False)
    general = await _answer(anonymous, body, "application/json; charset=utf-8", accept)
    assert short == general


@pytest.mark.parametrize(
    ("content_type", "accept"),
    [
        ("text/plain", None),
        ("Application/JSON", None),
        ("application/jsonx", None),
        ("application/json", "text/event-stream"),
        ("application/json", "Multipart/Mixed;subscriptionSpec=1.0"),
    ],
)
async def test_other_requests_take_strawberrys_run(
    hardened_app: Starlette,
    anonymous: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    content_type: str,
    accept: str | None,
) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the short path was taken")

    monkeypatch.setattr(GraphQLOverHTTP, "run_json_post", refuse)
    status, _, _ = await _answer(
        anonymous, json.dumps({"query": "{ __typename }"}).encode(), content_type, accept
    )
    assert status != 500
