"""Prepared operations: a document known to be valid skips parsing and validation, and
no client can tell (answers, errors, statuses and costs byte for byte as without the
document cache); whatever the skipped hooks would have had a say in is not prepared."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from strawberry.extensions import SchemaExtension

from graphql_api.hardening.persisted_queries.stores import document_hash
from graphql_api.hardening.query_limits.document_cache import DocumentCache
from graphql_api.hardening.query_limits.guard import QueryLimits, limit_extensions
from schema import build_schema
from tests.conftest import http_client, login_token, running_app
from tests.hardening.conftest import hardened_settings, hardening_of

SYMBOLS = """
query Symbols($first: Int!) { symbols(first: $first) { edges { node { code ...Named } } } }
fragment Named on Symbol { name }
"""
TWO_OPERATIONS = "query A { __typename } query B { me { username } }"
ORDERS = "query Orders($first: Int!) { orders(first: $first) { edges { node { id } } } }"
INVALID = "{ symbols(first: 1) { edges { node { nope } } } }"
CANCEL = 'mutation { cancelOrder(id: "999999999") { userErrors { code } } }'

# (label, requests, how many of them are prepared once the first has been seen)
Request = dict[str, Any]
SEQUENCES: dict[str, tuple[list[Request], int]] = {
    "variables and fragments": (
        [{"json": {"query": SYMBOLS, "variables": {"first": n}}} for n in (1, 2, 1)],
        2,
    ),
    "typename": ([{"json": {"query": "{ __typename }"}}] * 3, 2),
    "two operations, named": (
        [{"json": {"query": TWO_OPERATIONS, "operationName": name}} for name in "ABA"],
        2,
    ),
    "two operations, unnamed": ([{"json": {"query": TWO_OPERATIONS}}] * 3, 0),
    "two operations, named, then unnamed": (
        [{"json": {"query": TWO_OPERATIONS, "operationName": "A"}}]
        + [{"json": {"query": TWO_OPERATIONS}}] * 2,
        0,
    ),
    "nul in the variables": (
        [{"json": {"query": SYMBOLS, "variables": {"first": 1}}}]
        + [{"json": {"query": SYMBOLS, "variables": {"first": 1, "x": "a\x00b"}}}] * 2,
        0,
    ),
    "over the cost limit through a variable": (
        [{"json": {"query": ORDERS, "variables": {"first": n}}} for n in (5, 1_000_000, 5)],
        1,
    ),
    "invalid": ([{"json": {"query": INVALID}}] * 3, 0),
    "a mutation, then over GET": (
        [{"json": {"query": CANCEL}}, {"json": {"query": CANCEL}}, {"get": {"query": CANCEL}}],
        1,
    ),
    "persisted query": (
        [
            {
                "json": {
                    "query": "{ __typename }",
                    "extensions": {
                        "persistedQuery": {
                            "version": 1,
                            "sha256Hash": document_hash("{ __typename }"),
                        }
                    },
                }
            }
        ]
        * 3,
        0,
    ),
}


async def responses(app: Starlette, requests: list[Request]) -> list[tuple[int, str, bytes]]:
    async with http_client(app, await login_token(app)) as client:
        answered = []
        for request in requests:
            response = await send(client, request)
            answered.append(
                (response.status_code, response.headers["content-type"], response.content)
            )
        return answered


async def send(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    if "get" in request:
        return await client.get("/graphql", params=request["get"])
    return await client.post("/graphql", json=request["json"])


@pytest.mark.parametrize("label", list(SEQUENCES))
async def test_answers_are_byte_identical_whether_prepared_or_not(
    sqlite_url: str, label: str
) -> None:
    requests, prepared = SEQUENCES[label]
    async with running_app(hardened_settings(sqlite_url, DOCUMENT_CACHE_SIZE=0)) as app:
        uncached = await responses(app, requests)
    async with running_app(hardened_settings(sqlite_url)) as app:
        cached = await responses(app, requests)
        cache = hardening_of(app).document_cache
    assert cached == uncached
    assert cache.prepared == prepared


class CountsValidation(SchemaExtension):
    """An extension the prepared path knows nothing about, hooking validation."""

    calls = 0

    def on_validate(self) -> Iterator[None]:
        CountsValidation.calls += 1
        yield


@pytest.mark.parametrize("with_unknown_hook", [False, True])
async def test_an_extension_hooking_validation_turns_preparation_off(
    with_unknown_hook: bool,
) -> None:
    cache = DocumentCache()
    extensions: list[Any] = list(limit_extensions(QueryLimits(), cache))
    if with_unknown_hook:
        extensions.append(CountsValidation)
    schema = build_schema(extensions)
    CountsValidation.calls = 0
    results = [await schema.execute("{ __typename }") for _ in range(3)]
    assert all(result.data == {"__typename": "Query"} for result in results)
    assert cache.prepared == (0 if with_unknown_hook else 2)
    assert CountsValidation.calls == (3 if with_unknown_hook else 0)
