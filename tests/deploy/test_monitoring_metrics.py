"""Every metric the alerts and the dashboard read is exported by a real app.

The app runs as in production on the embedded database: simulated feed,
matcher, an outside feed expected. Once it has stored ticks from both sources
and filled an order through the tick stream (so histograms have buckets and
labelled families have their labels), its ``/metrics`` must hold every name
deploy/prometheus/alerts.yml and deploy/grafana/dashboard.json use, and pass
``promtool check metrics``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.services import Services
from tests.conftest import (
    http_client,
    login_token,
    make_settings,
    running_app,
    sql_database,
    user_token,
)
from tests.deploy.test_compose_file import DEPLOY
from tests.deploy.test_monitoring import PROMETHEUS_SERIES, referenced_metrics
from tests.support.graphql import execute
from tests.support.promtool import run_promtool

PLACE_ORDER = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status rejectReason } userErrors { field code } }
}
"""
INGEST = """
mutation ($ticks: [TickInput!]!) { ingestTicks(ticks: $ticks) { accepted userErrors { code } } }
"""
ORDER_STATUS = "query ($id: ID!) { order(id: $id) { status } }"
SYMBOL = "600519.SH"


@pytest.fixture
async def production_like_app(request: pytest.FixtureRequest) -> AsyncIterator[Starlette]:
    async with sql_database(request, "sqlite") as url:
        settings = make_settings(
            url,
            MARKET_FEED="simulated",
            FEED_TICKS_PER_SECOND=20,
            MATCHER_ENABLED=True,
            EXTERNAL_FEED_EXPECTED=True,
        )
        async with running_app(settings) as app:
            yield app


async def wait_until(check: object, timeout: float = 30, what: object = "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"condition not met in time {what}"
        await asyncio.sleep(0.05)


async def fill_an_order_from_ingested_ticks(app: Starlette) -> None:
    """A market buy, filled by a tick an outside feed sends through ingestTicks."""
    services: Services = app.state.services
    feed_token = await user_token(app, "metrics-feed", Role.FEED)
    async with (
        http_client(app, await login_token(app)) as trader,
        http_client(app, feed_token) as feed,
    ):

        async def leading() -> bool:
            return services.activity.leaders["matcher"].is_leader

        await wait_until(leading)

        async def quoted() -> bool:  # a MARKET order needs a quote (NO_MARKET_PRICE)
            return SYMBOL in await services.timeseries.latest_ticks([SYMBOL])

        await wait_until(quoted)
        order = {"symbol": SYMBOL, "side": "BUY", "type": "MARKET", "quantity": "100"}
        placed = await execute(trader, PLACE_ORDER, {"input": order})
        assert placed["placeOrder"]["userErrors"] == []
        assert placed["placeOrder"]["order"]["status"] == "NEW", placed
        order_id = placed["placeOrder"]["order"]["id"]
        await asyncio.sleep(0.2)  # the matcher has it in its book

        async def filled() -> bool:
            # at the simulated walk's price: a tick far above it would cost more than
            # the order reserved, and the order would be canceled instead of filled
            latest = (await services.timeseries.latest_ticks([SYMBOL]))[SYMBOL]
            cent = Decimal("0.01")
            tick = {
                "symbol": SYMBOL,
                "time": datetime.now(UTC).isoformat(),
                "last": str(latest.last),
                "bid": str(latest.last - cent),
                "ask": str(latest.last + cent),
                "volume": "1000",
            }
            sent = await execute(feed, INGEST, {"ticks": [tick]})
            assert sent["ingestTicks"] == {"accepted": 1, "userErrors": []}
            status = (await execute(trader, ORDER_STATUS, {"id": order_id}))["order"]["status"]
            assert status in {"NEW", "PARTIALLY_FILLED", "FILLED"}, status
            return bool(status == "FILLED")

        await wait_until(filled, what=(services.activity, services.ingestor.health))


def sample_names(exposition: str) -> set[str]:
    return {
        sample.name
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def test_every_metric_of_the_alerts_and_dashboard_is_exported(
    production_like_app: Starlette,
    promtool: str,
) -> None:
    # given an app that stored ticks from both sources and filled an order
    await fill_an_order_from_ingested_ticks(production_like_app)
    services: Services = production_like_app.state.services

    async def simulated_ticks_stored() -> bool:
        health = services.ingestor.health
        return all(source.stored > 0 for source in health.sources.values())

    await wait_until(simulated_ticks_stored)
    assert services.activity.fill_latency.count >= 1
    # when Prometheus scrapes it
    async with http_client(production_like_app, None) as anonymous:
        response = await anonymous.get("/metrics")
    assert response.status_code == 200
    exported = sample_names(response.text)
    # then every name an alert or a panel reads is there
    referenced = referenced_metrics()
    missing = {
        name: sorted(places)
        for name, places in referenced.items()
        if name not in exported and name not in PROMETHEUS_SERIES
    }
    assert missing == {}
    assert len(referenced) >= 20  # the extraction found the expressions' metrics
    # and the exposition passes Prometheus' own lint
    lint = run_promtool(promtool, "check", "metrics", cwd=DEPLOY, stdin=response.text)
    assert lint.returncode == 0, lint.stdout + lint.stderr


async def test_the_exported_values_say_what_happened(
    production_like_app: Starlette,
) -> None:
    await fill_an_order_from_ingested_ticks(production_like_app)
    async with http_client(production_like_app, None) as anonymous:
        text = (await anonymous.get("/metrics")).text
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert values[("quantgraph_leader", (("singleton", "matcher"),))] == 1
    assert values[("quantgraph_leader", (("singleton", "strategy-engine"),))] == 1
    assert values[("quantgraph_matcher_fills_total", ())] >= 1
    assert values[("quantgraph_matcher_fill_latency_seconds_count", ())] >= 1
    assert values[("quantgraph_matcher_fill_latency_seconds_bucket", (("le", "+Inf"),))] >= 1
    assert values[("quantgraph_market_data_ticks_total", (("source", "api"),))] >= 1
    assert values[("quantgraph_market_data_tick_failures_total", (("source", "api"),))] == 0
    # both sources are expected here, and both delivered moments ago
    for source in ("api", "simulated"):
        age = values[("quantgraph_market_data_last_tick_age_seconds", (("source", source),))]
        assert 0 <= age < 10, (source, age)
    assert values[("quantgraph_tick_batch_write_seconds_count", ())] >= 1
    assert values[("quantgraph_matcher_overflows_total", ())] == 0
    assert 0 <= values[("quantgraph_matcher_idle_seconds", ())] < 10  # the leader takes ticks
