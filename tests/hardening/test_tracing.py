"""Optional OpenTelemetry tracing (TRACING=true): a span per operation and per resolver."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import http_client, running_app
from tests.hardening.conftest import hardened_settings

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> None:
    """The process-wide provider (set once), as an embedding program or OTEL_* would."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


async def test_operations_and_resolvers_are_traced(sqlite_url: str) -> None:
    EXPORTER.clear()
    query = "query TwoSymbols { symbols(first: 2) { edges { node { code name } } } }"
    async with (
        running_app(hardened_settings(sqlite_url, TRACING=True)) as app,
        http_client(app, None) as http,
    ):
        body = (await http.post("/graphql", json={"query": query})).json()
    # the answer is whole (plain fields too, though a resolve hook now sees each one)
    codes = [edge["node"]["code"] for edge in body["data"]["symbols"]["edges"]]
    assert len(codes) == 2 and all(
        edge["node"]["name"] for edge in body["data"]["symbols"]["edges"]
    )
    names = [span.name for span in EXPORTER.get_finished_spans()]
    assert "GraphQL Query: TwoSymbols" in names
    assert "GraphQL Resolving: symbols" in names
    assert "GraphQL Parsing" in names and "GraphQL Validation" in names


async def test_tracing_is_off_by_default(sqlite_url: str) -> None:
    EXPORTER.clear()
    async with running_app(hardened_settings(sqlite_url)) as app, http_client(app, None) as http:
        await http.post("/graphql", json={"query": "{ exchanges }"})
    assert EXPORTER.get_finished_spans() == ()
