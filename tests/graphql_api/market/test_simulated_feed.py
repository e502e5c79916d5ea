"""The simulated feed keeps its configured rate, also after it fell behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from graphql_api.market.simulated_feed import RandomWalk, run_simulated_feed
from graphql_api.server.runtime import open_services
from tests.conftest import make_settings, sql_database


async def test_a_feed_that_fell_behind_skips_ahead_instead_of_bursting(
    request: pytest.FixtureRequest,
) -> None:
    async with (
        sql_database(request, "sqlite") as url,
        open_services(make_settings(url, MATCHER_ENABLED=False)) as services,
    ):
        specs = services.catalog.all()
        walk = RandomWalk(specs, {spec.code: spec.tick_size * 1000 for spec in specs}, seed=1)
        feed = asyncio.create_task(run_simulated_feed(walk, services.ingestor, ticks_per_second=50))
        try:
            await asyncio.sleep(0.5)
            # given a stall of 1.5 s (the whole process paused: a blocked loop, a slow store)
            time.sleep(1.5)  # noqa: ASYNC251 - the stall under test blocks the loop
            # when the feed runs on for a second
            before = services.ingestor.written
            await asyncio.sleep(1.0)
            after_stall = services.ingestor.written - before
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
    # then it emitted about 50 ticks (one slice at once, then the usual pace), not
    # 50 plus a replay of the 75 it missed
    assert 20 <= after_stall <= 70, after_stall
