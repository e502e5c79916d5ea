"""Start and stop: the valid transitions, and refusals as user errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from graphql_api.platform.errors import ErrorCode
from graphql_api.platform.settings import Settings
from graphql_api.realtime.channels import CONTROL_CHANNEL
from graphql_api.realtime.events import decode_id_event
from graphql_api.services import Services
from graphql_api.strategies.definitions import StrategyDraft, StrategyKind
from graphql_api.strategies.lifecycle import start_strategy, stop_strategy
from storage import models
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The runtime's own strategy engine stays off: these tests drive strategies themselves."""
    return make_settings(database_url, STRATEGY_ENGINE_ENABLED="false")


async def create(services: Services, user_id: int | None = None) -> int:
    outcome = await services.strategies.create(
        user_id or services.demo_user_id,
        StrategyDraft(name="s", kind=StrategyKind.EMA_CROSS, symbol="ETHUSDT"),
    )
    assert outcome.strategy is not None
    return outcome.strategy.id


async def test_stopped_strategy_starts_and_stops(services: Services) -> None:
    user = services.demo_user_id
    strategy_id = await create(services)
    started = await start_strategy(services.sessions, services.outbox, user, strategy_id)
    assert started.errors == [] and started.strategy is not None
    assert started.strategy.status == "RUNNING"
    stopped = await stop_strategy(services.sessions, services.outbox, user, strategy_id)
    assert stopped.errors == [] and stopped.strategy is not None
    assert stopped.strategy.status == "STOPPED"


async def test_invalid_transitions_are_not_allowed(services: Services) -> None:
    user = services.demo_user_id
    strategy_id = await create(services)
    # stopping a STOPPED strategy
    outcome = await stop_strategy(services.sessions, services.outbox, user, strategy_id)
    assert [(e.field, e.code, e.message) for e in outcome.errors] == [
        ("id", ErrorCode.NOT_ALLOWED, "strategy is already STOPPED")
    ]
    assert outcome.strategy is not None and outcome.strategy.status == "STOPPED"
    # starting a RUNNING one
    await start_strategy(services.sessions, services.outbox, user, strategy_id)
    outcome = await start_strategy(services.sessions, services.outbox, user, strategy_id)
    assert [(e.code, e.message) for e in outcome.errors] == [
        (ErrorCode.NOT_ALLOWED, "strategy is already RUNNING")
    ]


async def test_an_errored_strategy_can_be_started_again_but_not_stopped(
    services: Services,
) -> None:
    user = services.demo_user_id
    strategy_id = await create(services)
    async with services.sessions() as session:
        await session.execute(
            update(models.Strategy)
            .where(models.Strategy.id == strategy_id)
            .values(status="ERROR", status_reason="boom", last_bar_at=datetime.now(UTC))
        )
        await session.commit()
    refused = await stop_strategy(services.sessions, services.outbox, user, strategy_id)
    assert [e.code for e in refused.errors] == [ErrorCode.NOT_ALLOWED]
    started = await start_strategy(services.sessions, services.outbox, user, strategy_id)
    assert started.errors == [] and started.strategy is not None
    # a start is a fresh go-live: the error and the old bar position are cleared
    assert (started.strategy.status, started.strategy.status_reason) == ("RUNNING", None)
    assert started.strategy.last_bar_at is None


async def test_unknown_and_other_users_strategies_are_not_found(services: Services) -> None:
    strategy_id = await create(services)
    async with services.sessions() as session:
        other = models.User(username="other", role="TRADER", created_at=datetime.now(UTC))
        session.add(other)
        await session.commit()
    for user, target in ((services.demo_user_id, 999_999), (other.id, strategy_id)):
        for change in (start_strategy, stop_strategy):
            outcome = await change(services.sessions, services.outbox, user, target)
            assert outcome.strategy is None
            assert [(e.field, e.code) for e in outcome.errors] == [("id", ErrorCode.NOT_FOUND)]


async def test_concurrent_starts_let_exactly_one_through(services: Services) -> None:
    strategy_id = await create(services)
    outcomes = await asyncio.gather(
        *(
            start_strategy(services.sessions, services.outbox, services.demo_user_id, strategy_id)
            for _ in range(5)
        )
    )
    assert sum(1 for outcome in outcomes if not outcome.errors) == 1


async def test_transitions_are_announced_to_the_engine(services: Services) -> None:
    strategy_id = await create(services)
    async with services.hub.subscribe([CONTROL_CHANNEL], conflate=False) as box:
        await start_strategy(services.sessions, services.outbox, services.demo_user_id, strategy_id)
        event = decode_id_event((await asyncio.wait_for(box.get(), 5)).message)
    assert (event["kind"], event["id"], event["status"]) == ("strategy", strategy_id, "RUNNING")
