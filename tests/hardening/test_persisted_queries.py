"""Automatic persisted queries (Apollo's protocol) and the allow-list mode."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.hardening.persisted_queries.stores import (
    AllowListError,
    document_hash,
    load_allowlist,
)
from tests.conftest import http_client, running_app
from tests.hardening.conftest import counting_statements, hardened_settings
from tests.hardening.test_observability import scrape, value
from tests.support.graphql import Json, error_codes

QUERY_EXCHANGES = "query Exchanges { exchanges }"
QUERY_SYMBOLS = "query Symbols($first: Int!) { symbols(first: $first) { edges { node { code } } } }"


async def send(
    client: httpx.AsyncClient,
    sha256: str,
    query: str | None = None,
    variables: Json | None = None,
) -> Json:
    payload: Json = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256}},
        "variables": variables or {},
    }
    if query is not None:
        payload["query"] = query
    response = await client.post("/graphql", json=payload)
    body: Json = response.json()
    return body


async def test_round_trip(anonymous: httpx.AsyncClient, hardened_app: Starlette) -> None:
    sha256 = document_hash(QUERY_SYMBOLS)
    # given: an unknown hash is refused before any work
    with counting_statements(hardened_app) as statements:
        body = await send(anonymous, sha256, variables={"first": 2})
    assert error_codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"
    assert statements == []
    # when: the client sends hash and document, which registers it
    body = await send(anonymous, sha256, QUERY_SYMBOLS, {"first": 2})
    assert "errors" not in body
    # then: the hash alone is enough
    body = await send(anonymous, sha256, variables={"first": 3})
    assert "errors" not in body
    assert len(body["data"]["symbols"]["edges"]) == 3


async def test_hash_must_match_the_document(anonymous: httpx.AsyncClient) -> None:
    wrong = document_hash("{ exchanges }")
    body = await send(anonymous, wrong, QUERY_EXCHANGES)
    assert error_codes(body) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    # and nothing was registered under either hash
    assert error_codes(await send(anonymous, wrong)) == ["PERSISTED_QUERY_NOT_FOUND"]
    sha256 = document_hash(QUERY_EXCHANGES)
    assert error_codes(await send(anonymous, sha256)) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_invalid_documents_are_not_registered(anonymous: httpx.AsyncClient) -> None:
    query = "{ nope }"
    sha256 = document_hash(query)
    assert error_codes(await send(anonymous, sha256, query)) == ["GRAPHQL_VALIDATION_FAILED"]
    assert error_codes(await send(anonymous, sha256)) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize(
    "persisted",
    [{"version": 2, "sha256Hash": "0" * 64}, {"version": 1, "sha256Hash": "xyz"}, "nope"],
)
async def test_malformed_extension(anonymous: httpx.AsyncClient, persisted: Any) -> None:
    response = await anonymous.post("/graphql", json={"extensions": {"persistedQuery": persisted}})
    assert error_codes(response.json()) == ["BAD_REQUEST"]


async def test_over_get(anonymous: httpx.AsyncClient) -> None:
    sha256 = document_hash(QUERY_EXCHANGES)
    await send(anonymous, sha256, QUERY_EXCHANGES)
    response = await anonymous.get(
        "/graphql",
        params={"extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": sha256}})},
        headers={"accept": "application/json", "apollo-require-preflight": "true"},
    )
    assert response.status_code == 200
    assert "errors" not in response.json()


async def test_shared_through_redis_across_processes(sqlite_url: str, redis_url: str) -> None:
    settings = hardened_settings(
        sqlite_url, REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"test-{uuid.uuid4().hex}:"
    )
    sha256 = document_hash(QUERY_EXCHANGES)
    async with (
        running_app(settings) as first,
        running_app(settings) as second,
        http_client(first, None) as one,
        http_client(second, None) as other,
    ):
        assert "errors" not in await send(one, sha256, QUERY_EXCHANGES)
        assert "errors" not in await send(other, sha256)


@pytest.fixture
def allowlist(tmp_path: Path) -> Path:
    path = tmp_path / "operations.json"
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": document_hash(QUERY_SYMBOLS), "name": "Symbols", "body": QUERY_SYMBOLS}
        ],
    }
    path.write_text(json.dumps(manifest))
    return path


async def test_allowlist_mode(sqlite_url: str, allowlist: Path) -> None:
    settings = hardened_settings(sqlite_url, PERSISTED_QUERIES_ALLOWLIST=str(allowlist))
    async with running_app(settings) as app, http_client(app, None) as http:
        # listed: by hash, or in full
        body = await send(http, document_hash(QUERY_SYMBOLS), variables={"first": 1})
        assert "errors" not in body
        response = await http.post(
            "/graphql", json={"query": QUERY_SYMBOLS, "variables": {"first": 1}}
        )
        assert "errors" not in response.json()
        # not listed: refused, and never registered
        with counting_statements(app) as statements:
            response = await http.post("/graphql", json={"query": QUERY_EXCHANGES})
            assert error_codes(response.json()) == ["PERSISTED_QUERY_NOT_IN_LIST"]
            body = await send(http, document_hash(QUERY_EXCHANGES), QUERY_EXCHANGES)
            assert error_codes(body) == ["PERSISTED_QUERY_NOT_IN_LIST"]
            body = await send(http, document_hash(QUERY_EXCHANGES))
            assert error_codes(body) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        assert statements == []


def test_allowlist_ids_must_match_their_documents(tmp_path: Path) -> None:
    path = tmp_path / "operations.json"
    path.write_text(json.dumps({"0" * 64: QUERY_EXCHANGES}))
    with pytest.raises(AllowListError, match="is not the SHA-256"):
        load_allowlist(path)


async def test_a_refused_persisted_query_is_counted_in_the_operation_metrics(
    hardened_app: Starlette, anonymous: httpx.AsyncClient
) -> None:
    """The refusal is raised on the operation stage's way in: the metrics hook, entered
    before it, must still see it (and the access log's record with it)."""
    unknown = document_hash("query NeverSent { exchanges }")
    assert error_codes(await send(anonymous, unknown)) == ["PERSISTED_QUERY_NOT_FOUND"]
    text = await scrape(anonymous)
    assert (
        value(
            text,
            "quantgraph_graphql_operations_total",
            type="unknown",
            name="anonymous",
            outcome="PERSISTED_QUERY_NOT_FOUND",
        )
        == 1
    )
