"""The event outbox against real databases: commit publishes, rollback does not,
and several relays on one PostgreSQL publish each event exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from broadcaster import Broadcast

from graphql_api.realtime.hub import Hub, Mailbox
from graphql_api.realtime.outbox import EventOutbox
from storage.engine import SessionFactory, create_engine, create_session_factory
from tests.conftest import sql_database


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def drain(box: Mailbox, quiet: float = 0.5, first: float = 15.0) -> list[str]:
    """What arrives until the box stays quiet for ``quiet`` seconds. The first
    message may take up to ``first``: a relay's first pass opens a connection,
    which on a loaded machine took longer than the quiet window (a CI run saw
    nothing at all within 0.5 s)."""
    got: list[str] = []
    with contextlib.suppress(TimeoutError):
        got.append((await asyncio.wait_for(box.get(), first)).message)
        while True:
            got.append((await asyncio.wait_for(box.get(), quiet)).message)
    return got


async def backlog_emptied(outbox: EventOutbox, polls: int = 300) -> int:
    """The outbox's backlog once it reaches zero, or what is left after ``polls``
    looks 50 ms apart (the relay deletes what it published right after publishing)."""
    left = await outbox.backlog()
    for _ in range(polls):
        if not left:
            break
        await asyncio.sleep(0.05)
        left = await outbox.backlog()
    return left


async def test_committed_events_are_relayed_and_rolled_back_ones_never(database_url: str) -> None:
    async with database(database_url) as sessions, Broadcast("memory://") as broadcast:
        hub = Hub(broadcast)
        outbox = EventOutbox(sessions, hub)
        async with hub.subscribe(["c"], conflate=False) as box:
            async with sessions() as session:
                outbox.stage(session, "c", "kept-1")
                outbox.stage(session, "c", "kept-2")
                await session.commit()
            async with sessions() as session:
                outbox.stage(session, "c", "dropped")
                await session.rollback()
            assert await outbox.backlog() == 2
            relay = asyncio.create_task(outbox.run())
            try:
                assert await drain(box) == ["kept-1", "kept-2"]
                assert await backlog_emptied(outbox) == 0
            finally:
                relay.cancel()
                await asyncio.gather(relay, return_exceptions=True)


@pytest.mark.postgres
async def test_relays_of_several_processes_publish_each_event_once(
    request: pytest.FixtureRequest,
) -> None:
    async with (
        sql_database(request, "postgresql") as url,
        database(url) as first,
        database(url) as second,
        Broadcast("memory://") as broadcast,
    ):
        hub = Hub(broadcast)
        relays = [EventOutbox(first, hub, batch_size=7), EventOutbox(second, hub, batch_size=7)]
        async with hub.subscribe(["c"], conflate=False, capacity=10_000) as box:
            async with first() as session:
                for n in range(300):
                    relays[0].stage(session, "c", str(n))
                await session.commit()
            tasks = [asyncio.create_task(relay.run()) for relay in relays]
            try:
                got = await drain(box, quiet=2)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        assert sorted(got, key=int) == [str(n) for n in range(300)]  # each exactly once
        assert sum(relay.relayed for relay in relays) == 300
