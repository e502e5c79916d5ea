"""The README's AAPL walkthrough, step by step, as its reader runs it: the shell lines
and GraphQL documents are read from the README section itself (so the two cannot
drift), the commands are the real CLI, the servers real ``quantgraph serve``
processes on one SQLite file. Listing, both imports, the backtest, and then a
recorded NASDAQ day replayed at 10x — at whatever hour the suite runs — reaching a
ticks subscription while the autoTrade strategy's market order fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.conftest import sql_database
from tests.support.graphql import WsClient, execute
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "walkthrough-password"


def walkthrough() -> list[tuple[str, str]]:
    """The (language, text) of every fenced block of the README's walkthrough, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Walkthrough: AAPL", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(sh|graphql)\n(.*?)```", section, re.S)


def test_the_walkthrough_has_the_steps_this_test_follows() -> None:
    kinds = [kind for kind, _ in walkthrough()]
    assert kinds == [
        "sh",
        "graphql",
        "sh",
        "graphql",
        "graphql",
        "graphql",
        "sh",
        "graphql",
        "graphql",
    ]


class Reader:
    """Runs the README's lines: CLI commands as subprocesses, ``serve`` as the one server."""

    def __init__(self, database_url: str) -> None:
        self.env = {"DATABASE_URL": database_url}
        self.server: ServerProcess | None = None
        self.token = ""

    def shell(self, block: str) -> None:
        for line in block.splitlines():
            words = shlex.split(line)
            settings: dict[str, str] = {}
            while "=" in words[0]:
                name, value = words.pop(0).split("=", 1)
                settings[name] = value
            assert words[0] == "quantgraph", line
            if words[1] == "serve":
                self.serve(settings)
            else:
                self.command(words[1:], settings)

    def command(self, args: list[str], settings: dict[str, str]) -> None:
        stdin = None
        if args[0] == "create-user":  # the README's reader types the password
            args, stdin = [*args, "--password-stdin"], PASSWORD + "\n"
        done = subprocess.run(
            [sys.executable, "-m", "graphql_api.server.cli", *args],
            input=stdin,
            env={**os.environ, **self.env, **settings},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)

    def serve(self, settings: dict[str, str]) -> None:
        self.stop()
        self.server = ServerProcess({**self.env, **settings})
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        assert self.server is not None
        async with httpx.AsyncClient(base_url=self.server.http, timeout=30) as http:
            data = await execute(
                http,
                "mutation ($u: String!, $p: String!) { login(username: $u, password: $p) "
                "{ tokens { accessToken } } }",
                {"u": "admin", "p": PASSWORD},
            )
            self.token = data["login"]["tokens"]["accessToken"]
            http.headers["authorization"] = f"Bearer {self.token}"
            yield http


@pytest.fixture
def in_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's paths (examples/...) are relative to the repository."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def reader_log() -> Iterator[list[Reader]]:
    readers: list[Reader] = []
    yield readers
    for reader in readers:
        reader.stop()


async def test_the_readme_walkthrough_lists_imports_backtests_and_trades_a_replayed_day(
    request: pytest.FixtureRequest, in_repository_root: None, reader_log: list[Reader]
) -> None:
    (
        (_, start),
        (_, create_symbol),
        (_, imports),
        (_, backtest),
        (_, create_strategy),
        (_, start_strategy),
        (_, replay),
        (_, subscription),
        (_, orders),
    ) = walkthrough()
    async with sql_database(request, "sqlite") as url:
        reader = Reader(url)
        reader_log.append(reader)
        # 1-2: an admin, a server, AAPL listed with its NASDAQ session and a USD balance
        reader.shell(start)
        async with reader.client() as http:
            listed = (await execute(http, create_symbol))["createSymbol"]
            assert listed["userErrors"] == []
            assert listed["symbol"]["code"] == "AAPL"
            assert listed["symbol"]["currency"] == "USD"
            # 3: both imports through the CLI, while the server runs
            reader.shell(imports)
            # 4: the backtest trades on the imported days
            result = (await execute(http, backtest))["runBacktest"]
            assert result["userErrors"] == []
            assert result["result"]["tradeCount"] > 0
            # 5: the autoTrade strategy, started
            created = (await execute(http, create_strategy))["createStrategy"]
            assert created["userErrors"] == []
            strategy_id = created["strategy"]["id"]
            started = (await execute(http, start_strategy, {"id": strategy_id}))["startStrategy"]
            assert started["userErrors"] == []
            assert started["strategy"]["status"] == "RUNNING"
        # 6: restarted with the recording as its market, at 10x, whatever the hour
        began = datetime.now(UTC)
        reader.shell(replay)
        assert reader.server is not None
        async with reader.client() as http:
            ws = await WsClient.open(
                reader.server.ws, payload={"authorization": f"Bearer {reader.token}"}
            )
            try:
                await ws.subscribe(subscription)
                live: list[dict[str, str]] = []
                while len(live) < 5:
                    tick = (await ws.next_data(timeout=15))["ticks"]
                    if datetime.fromisoformat(tick["time"]) >= began:  # re-stamped to now
                        live.append(tick)
                # a tick every half second (5 s recorded over 10; a slow reader may skip some)
                times = [datetime.fromisoformat(t["time"]) for t in live]
                gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
                assert all(0.3 <= gap <= 5 for gap in gaps), gaps
                assert all(Decimal(t["last"]) >= Decimal("190.00") for t in live)
            finally:
                await ws.close()
            # the strategy bought one share at market within the first minute, and it filled
            deadline = asyncio.get_running_loop().time() + 120
            while True:
                edges = (await execute(http, orders))["orders"]["edges"]
                nodes = [edge["node"] for edge in edges]
                if any(node["status"] == "FILLED" for node in nodes):
                    break
                assert asyncio.get_running_loop().time() < deadline, nodes
                await asyncio.sleep(1)
            bought = next(node for node in nodes if node["status"] == "FILLED")
            assert bought["side"] == "BUY" and bought["type"] == "MARKET"
            assert Decimal(bought["quantity"]) == 1
            assert Decimal(bought["averageFillPrice"]) >= Decimal("190.00")
            assert bought["strategy"] == {"name": "AAPL 1/2"}
