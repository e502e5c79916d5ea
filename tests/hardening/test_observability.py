"""Prometheus metrics and the readiness probe."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from graphql_api.market.source_health import TickSource
from graphql_api.services import Services
from tests.conftest import http_client, running_app
from tests.hardening.conftest import hardened_settings, hardening_of

TIGHT = {"RATE_LIMIT_BURST": 15, "RATE_LIMIT_PER_SECOND": 0.001}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return TIGHT


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, metric: str, /, **labels: str) -> float:
    return samples(text).get((metric, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_after_some_requests(
    trader: httpx.AsyncClient, hardened_app: Starlette
) -> None:
    # given
    mine = {"query": "query Mine { orders(first: 1) { edges { cursor } } }"}
    await trader.post("/graphql", json=mine)
    await trader.post("/graphql", json=mine)
    await trader.post("/graphql", json={"query": "{ nope }"})
    await trader.post("/graphql", json={"query": "{ symbols(first: 20) { edges { cursor } } }"})
    services: Services = hardened_app.state.services
    before = await scrape(trader)
    async with services.hub.subscribe(["ticks.TEST"], conflate=True) as mailbox:
        for price in ("1", "2", "3"):
            await services.hub.publish("ticks.TEST", price)
        message = await mailbox.get()
        assert message.message in {"1", "2", "3"}
        # when
        text = await scrape(trader)
        # then: one more subscriber (the auth service has its own), one more delivery
        for name, labels in (
            ("quantgraph_hub_subscribers", {}),
            ("quantgraph_hub_messages_total", {"fate": "delivered"}),
        ):
            assert value(text, name, **labels) == value(before, name, **labels) + 1

    operations = "quantgraph_graphql_operations_total"
    assert value(text, operations, type="query", name="Mine", outcome="ok") == 2
    assert (
        value(text, operations, type="query", name="anonymous", outcome="GRAPHQL_VALIDATION_FAILED")
        == 1
    )
    assert value(text, operations, type="query", name="anonymous", outcome="RATE_LIMITED") == 1
    assert value(text, "quantgraph_rate_limit_refusals_total", bucket="user") == 1
    assert value(text, "quantgraph_graphql_operation_duration_seconds_count", type="query") == 4
    assert value(text, "quantgraph_graphql_query_cost_count") == 4
    assert (
        value(text, "quantgraph_http_requests_total", method="POST", route="/graphql", status="200")
        == 3
    )
    assert (
        value(text, "quantgraph_http_requests_total", method="POST", route="/graphql", status="429")
        == 1
    )
    assert value(text, "quantgraph_db_query_duration_seconds_count") >= 2
    assert value(text, "quantgraph_circuit_open", service="database") == 0
    assert value(text, "quantgraph_matcher_fills_total") == 0
    assert value(text, "quantgraph_websocket_connections") == 0
    assert value(text, "quantgraph_active_subscriptions") == 0


async def test_operation_names_cannot_grow_the_label_set(
    anonymous: httpx.AsyncClient, hardened_app: Starlette
) -> None:
    metrics = hardening_of(hardened_app).metrics
    assert metrics.operation_name("Fine_1") == "Fine_1"
    assert metrics.operation_name("nope; DROP") == "invalid"
    assert metrics.operation_name(None) == "anonymous"
    for index in range(600):
        metrics.operation_name(f"Name{index}")
    assert metrics.operation_name("OneMore") == "other"


async def test_each_app_has_its_own_registry(sqlite_url: str) -> None:
    settings = hardened_settings(sqlite_url)
    async with (
        running_app(settings) as first,
        running_app(settings) as second,
        http_client(first, None) as one,
        http_client(second, None) as other,
    ):
        await one.post("/graphql", json={"query": "query Only { exchanges }"})
        count = "quantgraph_graphql_operations_total"
        assert value(await scrape(one), count, type="query", name="Only", outcome="ok") == 1
        assert value(await scrape(other), count, type="query", name="Only", outcome="ok") == 0


async def test_readiness(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "timeseries": "ok", "broadcast": "ok", "engines": "ok"},
    }
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}


async def test_readiness_fails_when_a_background_loop_has_died(
    anonymous: httpx.AsyncClient, hardened_app: Starlette
) -> None:
    # given a background loop that has crashed
    async def crash() -> None:
        raise RuntimeError("boom")

    crashed = asyncio.create_task(crash())
    await asyncio.gather(crashed, return_exceptions=True)
    hardened_app.state.services.activity.tasks["ingestor"] = crashed
    # then the process says it is not ready (its load balancer stops routing to it)
    response = await anonymous.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["engines"] == "failed: stopped: ingestor"
    assert response.json()["checks"]["database"] == "ok"


async def test_fills_and_signals_are_exported(
    anonymous: httpx.AsyncClient, hardened_app: Starlette
) -> None:
    activity = hardened_app.state.services.activity
    activity.fills, activity.signals = 3, 2
    text = await scrape(anonymous)
    assert value(text, "quantgraph_matcher_fills_total") == 3
    assert value(text, "quantgraph_strategy_signals_total") == 2


async def test_matcher_lag_and_market_data_health_are_exported(
    anonymous: httpx.AsyncClient, hardened_app: Starlette
) -> None:
    # given a matcher working on a tick that arrived 3 s ago, and a stalled expected feed
    services: Services = hardened_app.state.services
    services.activity.matcher.in_flight = time.monotonic() - 3
    services.activity.fill_committed()
    services.ingestor.health.expect(TickSource.SIMULATED)
    services.ingestor.health.sources[TickSource.SIMULATED].expected_since = time.monotonic() - 40
    # when scraped
    text = await scrape(anonymous)
    # then
    assert value(text, "quantgraph_matcher_lag_seconds") >= 3
    assert value(text, "quantgraph_matcher_backlog") == 1
    assert value(text, "quantgraph_matcher_fill_latency_seconds_count") == 1
    assert value(text, "quantgraph_matcher_fill_latency_seconds_bucket", le="2.5") == 0
    assert value(text, "quantgraph_matcher_fill_latency_seconds_bucket", le="5.0") == 1
    age = "quantgraph_market_data_last_tick_age_seconds"
    assert value(text, age, source="simulated") >= 40
    # a source not expected here has no age (MarketDataSourceDown cannot fire for it)
    assert ("api",) not in {
        tuple(labels.values()) for (name, labels) in _labelled(text) if name == age
    }
    assert value(text, "quantgraph_market_data_ticks_total", source="api") == 0


def _labelled(text: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


async def test_metrics_exposition_is_bounded(anonymous: httpx.AsyncClient) -> None:
    # scanners hitting random paths land in one "other" route label
    for path in ("/wp-admin", "/.env", "/x/y/z"):
        await anonymous.get(path)
    text = await scrape(anonymous)
    routes = set(re.findall(r'route="([^"]+)"', text))
    assert routes <= {"/graphql", "/metrics", "/readyz", "/healthz", "/", "other"}
    assert "other" in routes
