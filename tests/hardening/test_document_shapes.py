"""Property: whatever shape a document has (fragments spread many times, aliases,
deep nesting, several operations, introspection), it is answered or refused with
a limit code after a bounded amount of work, and never an internal error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import http_client, running_app
from tests.hardening.conftest import hardened_settings
from tests.support.graphql import error_codes
from tests.support.work import call_budget

# Python calls per request, answer included: the largest answer these documents
# can get within the limits takes about a fifth of it; one fragment bomb without
# the limits, thousands of times more.
WORK_BUDGET = 3_000_000
REFUSALS = {
    "QUERY_TOO_COMPLEX",
    "QUERY_TOO_DEEP",
    "TOO_MANY_ALIASES",
    "TOO_MANY_TOKENS",
    "OPERATION_RESOLUTION_FAILURE",
    "GRAPHQL_VALIDATION_FAILED",
}

LEAVES = st.sampled_from(
    [
        "exchanges",
        "__typename",
        "me { username }",
        "symbols(first: 2) { edges { node { code } } }",
        "__schema { types { name } }",
        '__type(name: "Query") { name fields { name type { name } } }',
        "__schema { types { name fields { name args { name } } } }",
    ]
)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, str | None]:
    count = draw(st.integers(1, 12))
    fragments = []
    for i in range(count):
        items = draw(st.lists(LEAVES, max_size=3))
        later = list(range(i + 1, count))
        if later:
            spreads = draw(st.lists(st.sampled_from(later), max_size=3))
            items += [f"...F{j}" for j in spreads for _ in range(draw(st.integers(1, 3)))]
        items = [
            f"a{i}_{n}: {item}" if draw(st.booleans()) and not item.startswith("...") else item
            for n, item in enumerate(items)
        ]
        body = " ".join(items) or "__typename"
        for _ in range(draw(st.integers(0, 3))):
            body = f"... on Query {{ {body} }}"
        fragments.append(f"fragment F{i} on Query {{ {body} }}")
    operations = []
    for n in range(draw(st.integers(1, 3))):
        nesting = draw(st.integers(0, 60))
        body = "...F0 " + " ".join(draw(st.lists(LEAVES, max_size=2)))
        for _ in range(nesting):
            body = f"... on Query {{ {body} }}"
        named = n > 0 or draw(st.booleans())
        operations.append(f"query{f' Q{n}' if named else ''} {{ {body} }}")
    if len(operations) > 1 and operations[0].startswith("query {"):
        operations[0] = operations[0].replace("query {", "query Q0 {", 1)
    chosen = draw(st.sampled_from([None, "Q0"])) if len(operations) > 1 else None
    return "\n".join(operations + fragments), chosen


@pytest.fixture
async def anonymous_client(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_app(hardened_settings(sqlite_url, RATE_LIMIT=False, ACCESS_LOG=False)) as app,
        http_client(app, None) as http,
    ):
        yield http


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=documents())
async def test_every_shape_is_answered_or_refused_with_bounded_work(
    anonymous_client: httpx.AsyncClient, document: tuple[str, str | None]
) -> None:
    query, operation_name = document
    payload: dict[str, Any] = {"query": query}
    if operation_name is not None:
        payload["operationName"] = operation_name
    with call_budget(WORK_BUDGET):
        response = await anonymous_client.post(
            "/graphql", json=payload, headers={"accept": "application/graphql-response+json"}
        )
    assert response.status_code in {200, 400}, (response.status_code, response.text, query)
    body = response.json()
    codes = error_codes(body)
    assert "INTERNAL_SERVER_ERROR" not in codes, (body, query)
    if response.status_code == 400:
        assert "data" not in body
        assert codes and set(codes) <= REFUSALS, (codes, query)
    else:
        assert body["data"] is not None, (body, query)
    if query.count("query") > 1 and operation_name is None:
        assert codes == ["OPERATION_RESOLUTION_FAILURE"], (codes, query)
