"""MARKET_FEED wiring: the sources it names run in the server, each under its own
leadership, owning their symbols; a bad replay file leaves the server serving with the
source reported failed; the setting itself is checked at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection

from graphql_api.market.sessions import ALWAYS_OPEN_UTC
from graphql_api.market.source_health import SourceState, TickSource
from graphql_api.platform.settings import Settings
from graphql_api.server.readiness import source_states
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from tests.conftest import make_settings, postgres_database
from tests.graphql_api.market.sources.fake_binance import running_fake, trade

REPLAYED = "600519.SH"


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():  # noqa: ASYNC110 - waits on the source tasks
            await asyncio.sleep(0.02)


def recording(path: Path) -> Path:
    start = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    rows = ["symbol,time,last,bid,ask,volume"]
    for i in range(20):
        at = (start + timedelta(seconds=i)).isoformat()
        rows.append(f"{REPLAYED},{at},{1400 + i}.00,{1400 + i}.00,{1400 + i}.01,100")
    path.write_text("\n".join(rows) + "\n")
    return path


async def test_replay_and_simulated_run_together_each_on_its_own_symbols(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url,
        MARKET_FEED="simulated, replay",
        REPLAY_FILE=str(recording(tmp_path / "day.csv")),
        REPLAY_SPEED="max",
        FEED_IGNORE_SESSIONS=True,
        FEED_TICKS_PER_SECOND=200,
    )
    started = datetime.now(UTC)
    async with open_services(settings) as services:
        health = services.ingestor.health

        async def both_stored() -> bool:
            replayed = health.of(TickSource.REPLAY)
            return (
                replayed.state is SourceState.ENDED and health.of(TickSource.SIMULATED).stored > 0
            )

        await wait_until(both_stored)
        assert {"feed-replay", "feed-simulated"} <= set(services.activity.leaders)
        assert services.activity.leaders["feed-replay"].is_leader
        replayed = await services.timeseries.ticks(REPLAYED, started, None, 1000)
        # only the replay quotes its symbol: the walk's prices are elsewhere
        assert [t.last for t in replayed] == [
            t.last for t in sorted(replayed, key=lambda t: t.time)
        ]
        assert {str(t.last) for t in replayed} == {f"{1400 + i}.00" for i in range(20)}
        assert source_states(services) == {"replay": "ended", "simulated": "running"}


@pytest.mark.parametrize("ignore", [True, False])
async def test_the_replayed_symbols_trade_at_any_hour_unless_told_otherwise(
    database_url: str, tmp_path: Path, ignore: bool
) -> None:
    settings = make_settings(
        database_url,
        MARKET_FEED="replay",
        REPLAY_FILE=str(recording(tmp_path / "day.csv")),
        REPLAY_IGNORE_SESSIONS=ignore,
    )
    async with open_services(settings) as services:
        replayed, walked = services.catalog.cached(REPLAYED), services.catalog.cached("000001.SZ")
        assert replayed is not None and walked is not None
        assert (replayed.session == ALWAYS_OPEN_UTC) is ignore
        assert walked.session != ALWAYS_OPEN_UTC  # symbols the replay does not quote keep theirs


async def test_a_bad_replay_file_fails_the_source_not_the_server(
    database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"symbol,time,last\n{REPLAYED},2026-03-02T01:30:00Z,-1\n")
    settings = make_settings(database_url, MARKET_FEED="replay", REPLAY_FILE=str(bad))
    async with open_services(settings) as services:
        health = services.ingestor.health

        async def failed() -> bool:
            return health.of(TickSource.REPLAY).state is SourceState.FAILED

        await wait_until(failed)
        await asyncio.sleep(0.3)
        assert health.of(TickSource.REPLAY).restarts == 0  # never retried
        state = source_states(services)["replay"]
        assert state.startswith("failed: REPLAY_FILE")
        assert "line 2: last must be positive" in state
        assert services.activity.stopped_tasks() == []


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"MARKET_FEED": "simulated,kraken"}, "unknown source kraken"),
        ({"MARKET_FEED": "replay,replay", "REPLAY_FILE": "x.csv"}, "named twice"),
        ({"MARKET_FEED": "replay"}, "MARKET_FEED=replay needs REPLAY_FILE"),
        (
            {"MARKET_FEED": "replay", "REPLAY_FILE": "x.csv", "REPLAY_SYMBOLS": "BTCUSDT"},
            "not both",
        ),
        ({"REPLAY_SPEED": "fast"}, "is not a speed factor"),
        ({"MARKET_FEED": "binance"}, "MARKET_FEED=binance needs BINANCE_SYMBOLS"),
        (
            {
                "MARKET_FEED": "binance,replay",
                "BINANCE_SYMBOLS": "BTCUSDT",
                "REPLAY_SYMBOLS": "btcusdt",
                "REPLAY_FROM": "2026-03-02T00:00:00Z",
                "REPLAY_TO": "2026-03-03T00:00:00Z",
            },
            "BTCUSDT: one source per symbol",
        ),
        ({"REPLAY_SPEED": "-2"}, "above 0"),
        ({"REPLAY_FROM": "2026-03-02T09:30:00"}, "REPLAY_FROM must carry a UTC offset"),
    ],
)
def test_bad_source_settings_stop_start_up_naming_the_setting(
    environment: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**environment)  # type: ignore[arg-type]


def test_market_feed_names_a_list_and_none_names_nothing() -> None:
    assert Settings().market_feeds == ("simulated",)
    assert Settings(MARKET_FEED="none").market_feeds == ()
    both = Settings(MARKET_FEED="Simulated, replay", REPLAY_FILE="d.csv", REPLAY_SPEED="MAX")
    assert both.market_feeds == ("simulated", "replay")
    assert both.replay_speed_factor is None
    assert Settings(REPLAY_SPEED="10").replay_speed_factor == 10.0


async def test_binance_runs_in_the_server_and_the_walk_leaves_its_symbol_alone(
    database_url: str,
) -> None:
    async with running_fake() as fake:
        at = int(time.time() * 1000)
        fake.scripts.append(sends_trades([trade(n, f"95000.{n:02d}", "0.1", at) for n in range(5)]))
        settings = make_settings(
            database_url,
            MARKET_FEED="simulated,binance",
            BINANCE_SYMBOLS="btcusdt",
            BINANCE_WS_URL=fake.ws_url,
            BINANCE_REST_URL=fake.rest_url,
            FEED_IGNORE_SESSIONS=True,
            FEED_TICKS_PER_SECOND=200,
        )
        started = datetime.now(UTC) - timedelta(seconds=5)
        async with open_services(settings) as services:
            health = services.ingestor.health

            async def both_stored() -> bool:
                return (
                    health.of(TickSource.BINANCE).stored == 5
                    and health.of(TickSource.SIMULATED).stored > 20
                )

            await wait_until(both_stored)
            ticks = await services.timeseries.ticks("BTCUSDT", started, None, 1000)
            assert [str(t.last) for t in ticks] == [f"95000.{n:02d}" for n in range(5)]
            assert source_states(services) == {"binance": "running", "simulated": "running"}


def sends_trades(messages: list[str]) -> Callable[[ServerConnection], Awaitable[None]]:
    async def script(connection: ServerConnection) -> None:
        for message in messages:
            await connection.send(message)

    return script


@pytest.mark.postgres
async def test_two_processes_run_each_source_once_and_the_other_takes_over(
    postgres_url: str, postgres_template: str
) -> None:
    # given two server processes' services on one PostgreSQL, both naming the walk
    async with postgres_database(postgres_url, postgres_template) as url:
        settings = make_settings(
            url,
            MARKET_FEED="simulated",
            FEED_IGNORE_SESSIONS=True,
            FEED_TICKS_PER_SECOND=200,
            LEADER_LEASE_SECONDS=0.5,
        )
        stacks = [contextlib.AsyncExitStack(), contextlib.AsyncExitStack()]
        try:
            both = [await stack.enter_async_context(open_services(settings)) for stack in stacks]

            def walkers() -> list[Services]:
                return [s for s in both if s.activity.leaders["feed-simulated"].is_leader]

            async def one_walks() -> bool:
                walking = walkers()
                return (
                    len(walking) == 1
                    and walking[0].ingestor.health.of(TickSource.SIMULATED).stored > 20
                )

            # then exactly one of them walks, and only its ticks are stored
            await wait_until(one_walks)
            await asyncio.sleep(0.5)
            [leader] = walkers()
            index = both.index(leader)
            follower = both[1 - index]
            assert follower.ingestor.health.of(TickSource.SIMULATED).stored == 0
            assert source_states(follower) == {}
            # when the leader stops, the other takes the walk over
            await stacks[index].aclose()

            async def follower_walks() -> bool:
                return follower.ingestor.health.of(TickSource.SIMULATED).stored > 20

            await wait_until(follower_walks, timeout=15)
        finally:
            for stack in reversed(stacks):
                await stack.aclose()
