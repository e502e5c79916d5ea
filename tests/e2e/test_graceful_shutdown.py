"""SIGTERM during steady ingest: in-flight requests finish, no accepted tick is lost,
and the leader gives its locks up, so the other process leads as soon as it is gone."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.conftest import postgres_database
from tests.e2e.test_matcher_cluster import dsn, leader_pid
from tests.e2e.test_two_processes import MUTATION_INGEST, create_user, login
from tests.support.processes import ServerProcess, server_processes

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SYMBOLS = ("BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT")
BATCH = 25


@pytest.fixture
async def cluster_database(postgres_url: str, postgres_template: str) -> AsyncIterator[str]:
    async with postgres_database(postgres_url, postgres_template) as url:
        yield url


class Outcomes:
    """What each ingest request came back with, as the client saw it."""

    def __init__(self) -> None:
        self.accepted: set[tuple[str, datetime]] = set()
        self.refused = 0  # never reached the server (connection refused)
        self.cut = 0  # the connection dropped with no response: outcome unknown


async def steady_ingest(
    server: ServerProcess, token: str, symbol: str, outcomes: Outcomes, stop: asyncio.Event
) -> None:
    """Batches of unique ticks, back to back, until the server stops answering."""
    start = datetime.now(UTC) - timedelta(seconds=60)
    sequence = 0
    async with httpx.AsyncClient(
        base_url=server.http, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        while not stop.is_set():
            times = [start + timedelta(microseconds=sequence + n) for n in range(BATCH)]
            sequence += BATCH
            ticks = [
                {"symbol": symbol, "time": t.isoformat(), "last": "2.1500", "volume": "1"}
                for t in times
            ]
            try:
                response = await http.post(
                    "/graphql", json={"query": MUTATION_INGEST, "variables": {"ticks": ticks}}
                )
            except httpx.ConnectError:
                outcomes.refused += 1
                await asyncio.sleep(0.05)
                continue
            except (httpx.RemoteProtocolError, httpx.ReadError):
                outcomes.cut += 1
                continue
            body = response.json()
            assert body["data"]["ingestTicks"]["userErrors"] == [], body
            assert body["data"]["ingestTicks"]["accepted"] == BATCH
            outcomes.accepted.update((symbol, t) for t in times)


async def stored_ticks(database: str) -> set[tuple[str, datetime]]:
    connection = await asyncpg.connect(dsn(database))
    try:
        rows = await connection.fetch("SELECT symbol, time FROM ticks")
    finally:
        await connection.close()
    return {(row["symbol"], row["time"].astimezone(UTC)) for row in rows}


async def test_sigterm_during_ingest_loses_no_accepted_tick(cluster_database: str) -> None:
    env = {
        "DATABASE_URL": cluster_database,
        "BROADCAST_URL": "memory://",
        "MARKET_FEED": "none",
        "LEADER_LEASE_SECONDS": "2",
        "RATE_LIMIT": "false",
        # Long flushes: at SIGTERM, requests are certainly waiting in the write buffer.
        "TICK_FLUSH_INTERVAL_MS": "400",
        "TICK_BATCH_SIZE": "100000",
    }
    create_user(env, "feeder", "FEED")
    with server_processes(2, env) as servers:
        # given the matcher leader takes steady ingest from four clients
        pid = await leader_pid(cluster_database)
        leader = next(s for s in servers if s.process and s.process.pid == pid)
        follower = next(s for s in servers if s is not leader)
        async with httpx.AsyncClient(base_url=leader.http) as http:
            token = await login(http, "feeder")
        outcomes, stop = Outcomes(), asyncio.Event()
        writers = [
            asyncio.create_task(steady_ingest(leader, token, symbol, outcomes, stop))
            for symbol in SYMBOLS
        ]
        await asyncio.sleep(1.5)
        accepted_before = len(outcomes.accepted)
        # when it is asked to stop, mid-stream
        assert leader.process is not None
        leader.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        exit_code = await asyncio.to_thread(leader.process.wait, 30)
        exited_at = time.monotonic()
        stop.set()
        await asyncio.gather(*writers)
        # then it shuts down completely, having answered the requests it had taken in
        # (uvicorn re-raises the signal once done, so the exit status is -SIGTERM)
        assert exit_code in (0, -signal.SIGTERM), leader.output()
        assert "Application shutdown complete" in leader.output()
        assert len(outcomes.accepted) > accepted_before > 0
        # and every tick a client was told is accepted is stored
        stored = await stored_ticks(cluster_database)
        missing = outcomes.accepted - stored
        assert not missing, f"{len(missing)} accepted ticks lost"
        # and it gave the matcher up itself, on the way out (not by dying)
        assert re.search(r"leadership ended\s+name=matcher", leader.output()), leader.output()
        # and the other process leads the matcher a few retry intervals (0.4 s) later. The
        # wait is counted from the exit: how long the final flush takes depends on the
        # machine's load; the exit itself is bounded above (30 s).
        while await leader_pid(cluster_database) != follower.process.pid:  # type: ignore[union-attr]
            assert time.monotonic() < exited_at + 5, (
                f"the follower did not take over within 5 s of the leader's exit "
                f"({exited_at - stopped_at:.2f} s after SIGTERM)\n"
                f"leader:\n{leader.output()[-2500:]}\nfollower:\n{follower.output()[-2500:]}"
            )
            await asyncio.sleep(0.1)
        takeover = time.monotonic() - stopped_at
        print(
            f"accepted {len(outcomes.accepted)} ticks, stored {len(stored)}, "
            f"refused {outcomes.refused}, cut {outcomes.cut}, "
            f"exit {exited_at - stopped_at:.2f}s, takeover {takeover:.2f}s"
        )
        assert "Traceback" not in leader.output()
