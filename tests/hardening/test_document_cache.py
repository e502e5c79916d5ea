"""The document cache: a document seen before is not parsed or validated again, and
nothing a client can observe changes (answers, errors, limits, rate limits, metrics)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import graphql
import httpx
import pytest
import strawberry.schema.schema
from starlette.applications import Starlette

from graphql_api.hardening.persisted_queries.stores import document_hash
from graphql_api.hardening.query_limits import cost, document_cache, guard
from graphql_api.hardening.text_inputs import MESSAGE
from graphql_api.server.websocket import documents as websocket_documents
from storage.timeseries import Tick
from tests.conftest import http_client, live_server, login_token, running_app
from tests.hardening.conftest import counting_statements, hardened_settings, hardening_of
from tests.hardening.test_observability import scrape, value
from tests.support.graphql import Json, WsClient, error_codes, post

QUERY_SYMBOLS = "query Symbols($first: Int!) { symbols(first: $first) { edges { node { code } } } }"
QUERY_ORDERS_WITH_FILLS = """
query Orders($first: Int!) {
  orders(first: $first) { edges { node { id fills { price } } } pageInfo { hasNextPage } }
}
"""
# Several validation errors, on several lines, one of them inside a fragment.
QUERY_INVALID = """
query Broken($first: Int!) {
  symbols(first: $first) { edges { node { code nope } } }
  alsoNope
  ...OnQuery
}
fragment OnQuery on Query { exchanges { missing } }
"""
QUERY_SYNTAX_ERROR = "query Broken {\n  symbols(first: ) { edges { cursor } }\n}"
QUERY_TOO_DEEP = (
    "{ orders { edges { node { strategy { orders { strategy { orders { strategy { orders "
    "{ strategy { orders { strategy { orders { id } } } } } } } } } } } } } }"
)

DOCUMENTS = {
    "valid": (QUERY_SYMBOLS, {"first": 2}),
    "invalid": (QUERY_INVALID, {"first": 2}),
    "syntax error": (QUERY_SYNTAX_ERROR, {}),
    "too deep": (QUERY_TOO_DEEP, {}),
    "variables missing": (QUERY_SYMBOLS, {}),
}


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documents parsed by Strawberry's execution, the document cache and the
    WebSocket protocol (graphql-core's ``parse`` where each of them calls it, counted)."""
    parsed: list[str] = []

    def counting_parse(source: Any, **options: Any) -> Any:
        parsed.append(str(source))
        return graphql.parse(source, **options)

    for module in (strawberry.schema.schema, document_cache, websocket_documents):
        monkeypatch.setattr(module, "parse", counting_parse)
    return parsed


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documents Strawberry's execution validates (the text of each, counted)."""
    validated: list[str] = []
    original = strawberry.schema.schema.validate_document

    def counting_validate(schema: Any, document: Any, rules: Any) -> Any:
        validated.append(document.loc.source.body)
        return original(schema, document, rules)

    monkeypatch.setattr(strawberry.schema.schema, "validate_document", counting_validate)
    return validated


async def answers(
    app: Starlette, query: str, variables: Json, times: int, accept: str | None
) -> list[tuple[int, str | None, bytes]]:
    headers = {"accept": accept} if accept else {}
    async with http_client(app, await login_token(app)) as client:
        found = []
        for _ in range(times):
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            found.append(
                (response.status_code, response.headers.get("content-type"), response.content)
            )
        return found


@pytest.mark.parametrize("accept", [None, "application/graphql-response+json"])
@pytest.mark.parametrize("name", list(DOCUMENTS))
async def test_answers_are_byte_identical_with_and_without_the_cache(
    sqlite_url: str,
    name: str,
    accept: str | None,
    parses: list[str],
    validations: list[str],
) -> None:
    query, variables = DOCUMENTS[name]
    # given: the same requests to an app without the cache, then to one with it
    async with running_app(hardened_settings(sqlite_url, DOCUMENT_CACHE_SIZE=0)) as app:
        uncached = await answers(app, query, variables, 3, accept)
    parsed_without, validated_without = parses.count(query), validations.count(query)
    async with running_app(hardened_settings(sqlite_url)) as app:
        cached = await answers(app, query, variables, 3, accept)
    parsed_with = parses.count(query) - parsed_without
    validated_with = validations.count(query) - validated_without
    # then: every answer is the same, bytes included, however often it is asked
    assert len({*uncached, *cached}) == 1, (uncached, cached)
    assert parsed_without == 3
    # a document that parses is parsed once; a syntax error is not kept
    assert parsed_with == (3 if name == "syntax error" else 1)
    # what reaches graphql-core's validation is validated once (valid or not)
    reaches_validation = name not in ("syntax error", "too deep")
    assert validated_without == (3 if reaches_validation else 0)
    assert validated_with == (1 if reaches_validation else 0)


async def test_cost_is_priced_per_request_from_the_cached_document(
    sqlite_url: str, parses: list[str]
) -> None:
    settings = hardened_settings(sqlite_url, QUERY_MAX_COST=2000)
    async with running_app(settings) as app, http_client(app, await login_token(app)) as trader:
        # given: a document in the cache, cheap with these variables
        small = await post(trader, QUERY_ORDERS_WITH_FILLS, {"first": 10})
        assert "errors" not in small
        assert small["extensions"]["cost"] == {"requested": 10 + 10 * 20 + 1, "maximum": 2000}
        # when: the same document asks for pages too large
        with counting_statements(app) as statements:
            large = await post(trader, QUERY_ORDERS_WITH_FILLS, {"first": 100})
        # then: it is refused before any resolver, as an uncached one would be
        assert error_codes(large) == ["QUERY_TOO_COMPLEX"]
        assert large["errors"][0]["extensions"]["cost"] == 100 + 100 * 20 + 1
        assert statements == []
        # and the small page still runs
        again = await post(trader, QUERY_ORDERS_WITH_FILLS, {"first": 10})
        assert "errors" not in again
    assert parses.count(QUERY_ORDERS_WITH_FILLS) == 1


@pytest.fixture
def pricings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documents the query limits price (the text of each, counted)."""
    priced: list[str] = []
    original = cost.priced_operation

    def counting(schema: Any, document: Any, *args: Any, **kwargs: Any) -> tuple[int, bool]:
        priced.append(document.loc.source.body)
        return original(schema, document, *args, **kwargs)

    monkeypatch.setattr(guard, "priced_operation", counting)
    return priced


QUERY_FIXED_PAGE = "{ orders(first: 5) { edges { node { id fills { price } } } } }"
# Invalid (the variable is not declared), but priced before validation refuses it: with
# whatever page the variables give, so its cost must not be kept.
QUERY_UNDECLARED = "{ orders(first: $n) { edges { node { id } } } }"
MANY_NAMES = [f"Page{size}" for size in range(1, 21)]
QUERY_MANY = " ".join(
    f"query {name} {{ orders(first: {index}) {{ edges {{ node {{ id }} }} }} }}"
    for index, name in enumerate(MANY_NAMES, start=1)
)


async def test_a_cost_no_variable_goes_into_is_priced_once_per_document(
    sqlite_url: str, pricings: list[str]
) -> None:
    async with running_app(hardened_settings(sqlite_url)) as app:
        async with http_client(app, await login_token(app)) as trader:
            # when a document with fixed page sizes is asked for three times
            fixed = [await post(trader, QUERY_FIXED_PAGE) for _ in range(3)]
            # and one whose page comes from a variable, with two values
            small = await post(trader, QUERY_UNDECLARED, {"n": 5})
            large = await post(trader, QUERY_UNDECLARED, {"n": 500})
            # and each operation of a document of many, twice over
            for _ in range(2):
                for name in MANY_NAMES:
                    request = {"query": QUERY_MANY, "operationName": name}
                    body = (await trader.post("/graphql", json=request)).json()
                    assert "errors" not in body, body
        entry = hardening_of(app).document_cache.get(*_cache_key(app, QUERY_MANY))
    # then the fixed one is priced once and answers the same cost every time
    assert pricings.count(QUERY_FIXED_PAGE) == 1
    assert len({str(body["extensions"]["cost"]) for body in fixed}) == 1
    assert fixed[0]["extensions"]["cost"]["requested"] == 5 + 5 * 20
    # the variable one each time, with the page it was given
    assert pricings.count(QUERY_UNDECLARED) == 2
    assert small["extensions"]["cost"]["requested"] == 5
    assert large["extensions"]["cost"]["requested"] == 500
    # and a document keeps a few costs (the first names'), however many it has
    kept = document_cache.MAX_KNOWN_COSTS
    assert pricings.count(QUERY_MANY) == 2 * len(MANY_NAMES) - kept
    assert entry is not None and len(entry.costs) == kept


def _cache_key(app: Starlette, query: str) -> tuple[str, int | None]:
    limits = hardening_of(app).query_limits
    return document_cache.document_digest(query)[0], limits.max_tokens


async def test_documents_over_a_limit_are_refused_from_the_cache_too(
    hardened_app: Starlette, trader: httpx.AsyncClient, parses: list[str]
) -> None:
    cache = hardening_of(hardened_app).document_cache
    for _ in range(3):
        with counting_statements(hardened_app) as statements:
            body = await post(trader, QUERY_TOO_DEEP)
        assert error_codes(body) == ["QUERY_TOO_DEEP", "QUERY_TOO_COMPLEX"]
        assert statements == []
    assert parses.count(QUERY_TOO_DEEP) == 1
    assert cache.hits >= 2


async def test_cached_documents_draw_from_the_rate_limit_and_count_in_metrics(
    sqlite_url: str, parses: list[str]
) -> None:
    settings = hardened_settings(sqlite_url, RATE_LIMIT_BURST=15, RATE_LIMIT_PER_SECOND=0.001)
    async with running_app(settings) as app, http_client(app, await login_token(app)) as trader:
        # given: a document of cost 5 (a page of five symbols)
        statuses = []
        for _ in range(4):
            response = await trader.post(
                "/graphql",
                json={"query": QUERY_SYMBOLS, "variables": {"first": 5}},
                headers={"accept": "application/graphql-response+json"},
            )
            statuses.append(response.status_code)
        # then: three fit in the bucket of 15, the fourth is refused, parsed once in all
        assert statuses == [200, 200, 200, 429]
        assert parses.count(QUERY_SYMBOLS) == 1
        text = await scrape(trader)
    outcomes = {"type": "query", "name": "Symbols"}
    assert value(text, "quantgraph_graphql_operations_total", **outcomes, outcome="ok") == 3
    assert (
        value(text, "quantgraph_graphql_operations_total", **outcomes, outcome="RATE_LIMITED") == 1
    )
    assert value(text, "quantgraph_graphql_query_cost_count") == 4
    assert value(text, "quantgraph_rate_limit_refusals_total", bucket="user") == 1
    assert value(text, "quantgraph_document_cache_hits_total") == 3
    assert value(text, "quantgraph_document_cache_entries") >= 1


async def test_nul_in_the_variables_is_refused_for_a_cached_document(
    trader: httpx.AsyncClient, validations: list[str]
) -> None:
    query = "query One($code: String!) { symbol(code: $code) { code } }"
    assert (await post(trader, query, {"code": "BTCUSDT"}))["data"]["symbol"]["code"] == "BTCUSDT"
    for _ in range(2):
        refused = await post(trader, query, {"code": "BTC\x00USDT"})
        assert error_codes(refused) == ["BAD_USER_INPUT"]
        assert refused["errors"][0]["message"] == MESSAGE
        fine = await post(trader, query, {"code": "BTCUSDT"})
        assert fine["data"]["symbol"]["code"] == "BTCUSDT"
    # validated once with each of the two rule sets it was asked under, then again
    # each time the set changed back (the cache keeps the latest)
    assert validations.count(query) == 5


async def test_a_persisted_query_hash_runs_the_cached_document_without_parsing(
    anonymous: httpx.AsyncClient, parses: list[str]
) -> None:
    sha256 = document_hash(QUERY_SYMBOLS)
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha256}}
    # given: the document registered (parsed once)
    response = await anonymous.post(
        "/graphql",
        json={"query": QUERY_SYMBOLS, "variables": {"first": 1}, "extensions": persisted},
    )
    assert "errors" not in response.json()
    # when: the hash alone, with other variables
    for first in (2, 3, 4):
        body = (
            await anonymous.post(
                "/graphql", json={"variables": {"first": first}, "extensions": persisted}
            )
        ).json()
        # then
        assert "errors" not in body
        assert len(body["data"]["symbols"]["edges"]) == first
    assert parses.count(QUERY_SYMBOLS) == 1


@pytest.mark.parametrize(
    ("overrides", "kept"),
    [
        ({"DOCUMENT_CACHE_SIZE": 3}, 3),
        # each document below is 27 bytes: two fit in 60
        ({"DOCUMENT_CACHE_MAX_BYTES": 60}, 2),
        ({"DOCUMENT_CACHE_SIZE": 0}, 0),
    ],
)
async def test_the_cache_is_bounded(
    sqlite_url: str, overrides: dict[str, int], kept: int, parses: list[str]
) -> None:
    documents = [f"query Q{index} {{ exchanges }}" + " " * 5 for index in range(5)]
    assert {len(document) for document in documents} == {27}
    async with running_app(hardened_settings(sqlite_url, **overrides)) as app:
        cache = hardening_of(app).document_cache
        async with http_client(app, None) as anonymous:
            for document in documents:
                assert "errors" not in await post(anonymous, document)
            assert len(cache) == kept
            assert cache.bytes == 27 * kept
            # the most recent are the ones kept: asking for them parses nothing
            before = len(parses)
            for document in documents[len(documents) - kept :]:
                assert "errors" not in await post(anonymous, document)
            assert len(parses) == before


@pytest.mark.parametrize("cache_size", [1000, 0])
async def test_websocket_operations_parse_through_the_same_cache(
    sqlite_url: str, cache_size: int, parses: list[str]
) -> None:
    query = "query Exchanges { exchanges }"
    subscription = 'subscription Ticks { ticks(symbols: ["600519.SH"]) { symbol } }'
    settings = hardened_settings(sqlite_url, DOCUMENT_CACHE_SIZE=cache_size)
    async with live_server(settings) as (address, app):
        price = Decimal("1700.00")
        tick = Tick("600519.SH", datetime.now(UTC), price, price, price, Decimal(1))
        await app.state.services.ingestor.ingest([tick])
        # given: the query once over HTTP
        async with http_client(app, None) as anonymous:
            assert "errors" not in await post(anonymous, query)
        client = await WsClient.open(f"ws://{address}/graphql")
        try:
            # when: the same query and a subscription, each twice, over a WebSocket
            for _ in range(2):
                op_id = await client.subscribe(query)
                assert (await client.next_data())["exchanges"]
                assert await client.receive() == {"id": op_id, "type": "complete"}
            for _ in range(2):
                await client.subscribe(subscription)
                snapshot = await client.next_data()  # the latest known tick first
                assert snapshot["ticks"]["symbol"] == "600519.SH"
        finally:
            await client.close()
        cache = hardening_of(app).document_cache
    if cache_size:
        # then: each document was parsed once, whichever path took it
        assert (parses.count(query), parses.count(subscription)) == (1, 1)
        # (the shared execution runs the subscription with its conflation key added:
        # a third text, parsed once too)
        assert len(parses) == len(set(parses)) == len(cache) == 3
    else:
        # (without the cache: the protocol's looks, then the execution's parse, each time)
        assert parses.count(query) == 1 + 2 * 2
        assert parses.count(subscription) >= 2
        assert len(cache) == 0
