"""A TDengine outage: writes are buffered within their deadline, reads fail fast, /readyz says so.

No TDengine server can run here, so the connection is a stand-in that behaves
like taospy's on a dead server: every call blocks its worker thread (the native
client waits out its own timeouts, about 10 s) and then fails with a network
error. Everything above the connection is the real code: the pool and its
threads, the store, its buffer, the guard, the ingestor and the app.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.hardening.guarded_timeseries import GuardedTimeSeriesStore
from graphql_api.platform.resilience import CircuitBreaker, ServiceUnavailableError
from storage.timeseries.base import Tick
from storage.timeseries.tdengine import TDengineError, TDengineTimeSeriesStore, sql
from storage.timeseries.tdengine.pool import Row
from tests.conftest import http_client, make_settings, running_app, sql_database, user_token
from tests.support.graphql import error_codes, post

NETWORK_DOWN = 0x000B  # TSDB_CODE_RPC_NETWORK_UNAVAIL
ROW = re.compile(r"\((\d+), (-?\d+), (\d+), ")


class BlockingServer:
    """Stored rows, and an outage during which every call blocks ``block`` seconds, then fails.

    Rows are keyed by (table, ts, seq) and overwrite, as in TDengine.
    """

    def __init__(self, block: float) -> None:
        self.block = block
        self.down = threading.Event()
        self.rows: dict[tuple[str, int, int], int] = {}
        self.calls_while_down = 0
        self._lock = threading.Lock()

    def connect(self) -> BlockingConnection:
        self._fail_if_down()
        return BlockingConnection(self)

    def _fail_if_down(self) -> None:
        if self.down.is_set():
            with self._lock:
                self.calls_while_down += 1
            time.sleep(self.block)
            raise TDengineError("Unable to establish connection", NETWORK_DOWN)

    def execute(self, statement: str) -> int:
        self._fail_if_down()
        if statement.startswith("INSERT"):
            with self._lock:
                for table_part in statement.split(" market.")[1:]:
                    table = table_part.split(" ", 1)[0]
                    for ts, seq, last in ROW.findall(table_part):
                        self.rows[(table, int(ts), int(seq))] = int(last)
        return 1

    def query(self, statement: str) -> list[Row]:
        self._fail_if_down()
        if "ins_databases" in statement:
            return [("us",)]
        if statement.startswith("DESCRIBE"):
            schema = sql.TICKS_SCHEMA if "ticks" in statement else sql.BARS_1M_SCHEMA
            return [
                (name, kind, 8, "COMPOSITE KEY" if name == sql.COMPOSITE_KEY_COLUMN else "")
                for name, kind in schema.items()
            ]
        return []


class BlockingConnection:
    def __init__(self, server: BlockingServer) -> None:
        self.server = server

    def execute(self, statement: str) -> int:
        return self.server.execute(statement)

    def query(self, statement: str) -> list[Row]:
        return self.server.query(statement)

    def close(self) -> None: ...


T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


def tick(n: int) -> Tick:
    price = Decimal("95000.10")
    return Tick("BTCUSDT", T0 + timedelta(milliseconds=n), price, price, price, Decimal("0.5"))


@pytest.fixture
def server() -> Iterator[BlockingServer]:
    server = BlockingServer(block=2.0)
    yield server
    server.down.clear()


@pytest.fixture
async def store(server: BlockingServer) -> AsyncIterator[TDengineTimeSeriesStore]:
    opened = await TDengineTimeSeriesStore.open(
        "taos://localhost/market",
        retry_backoff=0.01,
        write_timeout=0.2,
        close_timeout=10,
        connect=server.connect,
    )
    yield opened
    server.down.clear()
    await opened.close()


async def timed(awaitable: object) -> float:
    started = time.perf_counter()
    await awaitable  # type: ignore[misc]
    return time.perf_counter() - started


async def drained(store: TDengineTimeSeriesStore, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.05)):
        if not store.buffered_rows:
            break
        await asyncio.sleep(0.05)
    assert store.buffered_rows == 0


async def test_writes_go_to_the_buffer_within_their_deadline_while_calls_block(
    store: TDengineTimeSeriesStore, server: BlockingServer
) -> None:
    # given a server whose every call blocks for 2 s, then fails
    server.down.set()
    # when writes arrive, one after another (the buffer's deliverer is blocked meanwhile)
    durations = [await timed(store.write_ticks([tick(n)])) for n in range(5)]
    # then each returns within about its 0.2 s deadline, buffered, never 3 x 2 s
    assert max(durations) < 1.0, durations
    assert store.buffered_rows == 5
    assert store.outage is not None
    # when the server is back, every accepted row is delivered, once
    server.down.clear()
    await drained(store)
    assert store.outage is None
    assert sorted(ts for _table, ts, _seq in server.rows) == sorted(
        int(tick(n).time.timestamp() * 1_000_000) for n in range(5)
    )


async def test_reads_fail_fast_once_writes_know_the_server_is_down(
    store: TDengineTimeSeriesStore, server: BlockingServer
) -> None:
    guarded = GuardedTimeSeriesStore(
        store, CircuitBreaker("tdengine", failure_threshold=5, reset_timeout=5), timeout=10
    )
    server.down.set()
    await guarded.write_ticks([tick(0)])  # buffered: the store now knows
    calls_before = server.calls_while_down
    for read in (
        guarded.latest_ticks(["BTCUSDT"]),
        guarded.ticks("BTCUSDT", None, None, 10),
        guarded.probe(),
    ):
        started = time.perf_counter()
        with pytest.raises(ServiceUnavailableError, match="writes are being buffered"):
            await read
        assert time.perf_counter() - started < 0.1  # not 10 s of a blocked connector call
    # the refused reads sent nothing (only the buffer's deliverer keeps trying)
    assert server.calls_while_down - calls_before <= 2
    server.down.clear()
    await drained(store)
    assert await guarded.latest_ticks(["BTCUSDT"]) == {}
    await guarded.probe()


async def test_a_read_that_finds_the_server_down_opens_the_circuit_at_once(
    store: TDengineTimeSeriesStore, server: BlockingServer
) -> None:
    # given no writes to tell the store, and reads with a 0.3 s deadline
    guarded = GuardedTimeSeriesStore(
        store, CircuitBreaker("tdengine", failure_threshold=5, reset_timeout=60), timeout=0.3
    )
    server.down.set()
    with pytest.raises(ServiceUnavailableError, match="no answer within"):
        await guarded.ticks("BTCUSDT", None, None, 10)
    # then the next reads are refused at once, not four more deadlines later
    for _ in range(4):
        started = time.perf_counter()
        with pytest.raises(ServiceUnavailableError, match="circuit open"):
            await guarded.ticks("BTCUSDT", None, None, 10)
        assert time.perf_counter() - started < 0.1


@pytest.fixture
async def tdengine_app(
    request: pytest.FixtureRequest, server: BlockingServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Starlette]:
    """The app with its ticks in "TDengine" (the stand-in), everything else in SQLite."""
    monkeypatch.setattr(
        "storage.timeseries.tdengine.store.connection_factory", lambda _url: server.connect
    )
    async with sql_database(request, "sqlite") as url:
        settings = make_settings(
            url,
            TDENGINE_URL="taos://localhost/market",
            TDENGINE_WRITE_TIMEOUT_SECONDS=0.2,
            MATCHER_ENABLED=False,
            STRATEGY_ENGINE_ENABLED=False,
        )
        async with running_app(settings) as app:
            yield app
        server.down.clear()


MUTATION_INGEST = """
mutation ($ticks: [TickInput!]!) { ingestTicks(ticks: $ticks) { accepted userErrors { code } } }
"""
QUERY_QUOTE = '{ symbol(code: "BTCUSDT") { quote { last } } }'


async def test_the_app_buffers_ticks_refuses_reads_and_is_not_ready_during_an_outage(
    tdengine_app: Starlette, server: BlockingServer
) -> None:
    token = await user_token(tdengine_app, "feeder", Role.FEED)
    async with http_client(tdengine_app, token) as http:
        assert (await http.get("/readyz")).status_code == 200
        # when TDengine goes down
        server.down.set()
        # then ticks are still accepted, within about the write deadline
        accepted = 0
        for n in range(3):
            started = time.perf_counter()
            ticks = [{"symbol": "BTCUSDT", "time": tick(n).time.isoformat(), "last": "95000.10"}]
            body = await post(http, MUTATION_INGEST, {"ticks": ticks})
            assert time.perf_counter() - started < 1.5, body
            accepted += body["data"]["ingestTicks"]["accepted"]
        assert accepted == 3
        # quotes fail fast with SERVICE_UNAVAILABLE, and the process says it is not ready
        started = time.perf_counter()
        body = await post(http, QUERY_QUOTE)
        assert error_codes(body) == ["SERVICE_UNAVAILABLE"], body
        assert time.perf_counter() - started < 0.5
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["timeseries"].startswith("failed"), ready.json()
        assert ready.json()["checks"]["database"] == "ok"

        # when it is back: what the feed was told was accepted is stored, and all is well
        server.down.clear()
        for _ in range(200):
            if (await http.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert (await http.get("/readyz")).status_code == 200
        assert len(server.rows) == accepted
        assert "errors" not in await post(http, QUERY_QUOTE)
