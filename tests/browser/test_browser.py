"""GraphiQL and the dashboard in a real browser: Debian's Chromium, driven by playwright-core.

``drive.mjs`` (Node) does what a person would: in GraphiQL it opens the docs,
types a token into the Headers tab, runs a query, a ``ticks`` subscription and an
``orderUpdates`` subscription (which only works if the token went in
``connection_init``); then on the dashboard at ``/`` it watches live ticks move
the last candle, switches interval, symbol and indicators, signs in with the
keyboard and sees a new order and position arrive, runs a backtest, audits the
page with axe-core, signs out and follows its link to GraphiQL. This test feeds the ticks and
checks what the browser saw. Screenshots are kept in ``artifacts/screenshots/``.

It fails, never skips, without Chromium or Node: ``scripts/install-browser.sh``
installs Chromium (``make test`` runs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette

from graphql_api.platform.settings import DEFAULT_DEMO_PASSWORD
from graphql_api.services import Services
from storage.timeseries import Tick
from tests.conftest import login_token
from tests.support.npm import json_lines_of, npm_ci

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DRIVER_DIR = Path(__file__).resolve().parent
DRIVER = DRIVER_DIR / "drive.mjs"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
DRIVER_TIMEOUT = 150.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The symbol the driver watches, and one more so the feed is not a single symbol.
SYMBOL = "BTCUSDT"
START_PRICES = {SYMBOL: Decimal("95000.00"), "ETHUSDT": Decimal("3400.00")}

Json = dict[str, Any]


@dataclass
class Feed:
    """Prices of the ticks fed so far, per symbol."""

    prices: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = os.environ.get("CHROMIUM", DEFAULT_CHROMIUM)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"the browser tests need Chromium at {path}: run `bash scripts/install-browser.sh` "
            "(installs Debian's `chromium`), or set CHROMIUM to a Chromium/Chrome executable"
        )
    return path


@pytest.fixture(scope="session")
def driver() -> Path:
    """drive.mjs with playwright-core installed (npm ci from the lockfile)."""
    npm_ci(DRIVER_DIR, needed_for="the browser test")
    return DRIVER


@contextlib.asynccontextmanager
async def feeding_ticks(services: Services, interval: float = 0.2) -> AsyncIterator[Feed]:
    """Ingest a new, higher tick of each symbol every ``interval`` seconds until the block ends."""
    feed = Feed()

    async def run() -> None:
        prices = dict(START_PRICES)
        while True:
            now = datetime.now(UTC)
            ticks = []
            for code in prices:
                prices[code] += Decimal("1.25")
                price = prices[code]
                feed.prices.setdefault(code, []).append(str(price))
                ticks.append(Tick(code, now, price, price, price, Decimal(1)))
            await services.ingestor.ingest(ticks)
            await asyncio.sleep(interval)

    task = asyncio.create_task(run(), name="browser-tick-feed")
    try:
        yield feed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_driver(command: list[str], env: dict[str, str]) -> list[Json]:
    return await json_lines_of(
        command,
        cwd=DRIVER_DIR,
        timeout=DRIVER_TIMEOUT,
        env=env,
        failure_hint=f"; screenshots in {SCREENSHOTS}",
    )


def event(lines: list[Json], name: str) -> Json:
    [found] = [line for line in lines if line["event"] == name]
    return found


async def test_graphiql_and_the_dashboard_work_in_chromium(
    chromium: str, driver: Path, web_server: tuple[str, Starlette]
) -> None:
    address, app = web_server
    services: Services = app.state.services
    for stale in SCREENSHOTS.glob("*.png"):
        stale.unlink()
    env = {
        "CHROMIUM": chromium,
        "QUANTGRAPH_TOKEN": await login_token(app),
        "QUANTGRAPH_USERNAME": "demo",
        "QUANTGRAPH_PASSWORD": DEFAULT_DEMO_PASSWORD,
        "QUANTGRAPH_SYMBOL": SYMBOL,
    }
    node = shutil.which("node")
    assert node is not None
    async with feeding_ticks(services) as feed:
        lines = await run_driver([node, str(driver), f"http://{address}", str(SCREENSHOTS)], env)
    fed = feed.prices[SYMBOL]

    # GraphiQL got the schema by introspection
    assert event(lines, "docs")["rootTypes"] == ["query", "mutation", "subscription"]

    # the query ran over HTTP with the Headers tab's token
    data = event(lines, "query")["response"]["data"]
    assert data["me"] == {"username": "demo"}
    codes = [edge["node"]["code"] for edge in data["symbols"]["edges"]]
    assert len(codes) == 3 and codes == sorted(codes)

    # the ticks subscription streamed the fed prices
    ticks = [response["data"]["ticks"] for response in event(lines, "ticks")["responses"]]
    assert [tick["symbol"] for tick in ticks] == [SYMBOL, SYMBOL]
    assert all(tick["last"] in fed for tick in ticks), (ticks, fed)
    assert ticks[0]["time"] != ticks[1]["time"]

    # orderUpdates needs a user: the token reached the socket's connection_init
    orders = event(lines, "orderUpdates")
    update = orders["response"]["data"]["orderUpdates"]
    assert update["id"] in {order["id"] for order in orders["placed"]}
    assert (update["side"], update["symbol"]) == ("BUY", {"code": SYMBOL})

    # the dashboard drew the fed symbol's daily candles, and live ticks moved the last one
    chart = event(lines, "chart")
    assert chart["status"] == "Live"
    daily = chart["daily"]
    assert (daily["symbol"], daily["interval"], daily["indicators"]) == (SYMBOL, "DAY_1", "sma")
    assert int(daily["bars"]) > 100  # the seeded daily history
    assert chart["later"]["lastClose"] != chart["ticked"]["lastClose"]
    fed_numbers = {float(price) for price in fed}
    assert float(chart["later"]["lastClose"]) in fed_numbers, (chart["later"], fed[-5:])
    assert chart["later"]["lastTime"].startswith(datetime.now(UTC).date().isoformat())

    # switching interval, symbol and indicators changed what is drawn
    switched = event(lines, "switch")
    assert switched["minute"]["interval"] == "MINUTE_1" and int(switched["minute"]["bars"]) >= 1
    assert int(switched["minute"]["bars"]) < int(daily["bars"])
    assert (switched["other"]["symbol"], switched["other"]["interval"]) == ("600519.SH", "DAY_1")
    assert switched["other"]["lastClose"] != daily["lastClose"]
    assert switched["unknown"] == "Unknown symbol NOPE; still showing 600519.SH"
    kept, other = switched["kept"], switched["other"]
    assert (kept["symbol"], kept["bars"]) == ("600519.SH", other["bars"])
    assert switched["indicators"]["indicators"] == "bollinger,rsi,macd"
    assert switched["caption"].startswith("600519.SH, day 1 bars:")

    # a wrong password was refused with a message
    refused = event(lines, "refused")
    assert refused["signedIn"] == "false" and refused["message"], refused

    # signing in showed the open orders and positions, kept live by orderUpdates
    account = event(lines, "account")
    assert account["username"] == "demo" and account["stored"] is True
    assert account["formVisible"] is False
    assert account["rows"] > int(account["before"]) >= 1
    assert any(row.startswith(f"{SYMBOL}BUYLIMIT") for row in account["orders"])
    assert any(row.startswith(SYMBOL) for row in account["positions"])

    # an alert set meanwhile fired, and its firing reached the page live (alerts)
    firing = event(lines, "firing")
    assert firing["errors"] == [] and firing["count"] >= 1, firing
    assert firing["rows"][0].startswith(SYMBOL) and "crossed above" in firing["rows"][0]

    # a backtest drew its equity curve and its trades on the chart
    backtest = event(lines, "backtest")
    assert int(backtest["equity"]["points"]) > 100
    assert backtest["chart"]["symbol"] == "600519.SH"
    trades = int(backtest["metrics"]["Trades"])
    assert trades >= 1 and int(backtest["chart"]["markers"]) == 2 * trades
    assert backtest["metrics"]["Total return"].endswith("%")

    # signing out forgot the token and revoked the session
    signout = event(lines, "signout")
    assert (signout["stored"], signout["formVisible"]) == (None, True)
    assert signout["logout"]["data"] == {"logout": {"ok": True}}

    # axe-core finds no WCAG A/AA (or best-practice) violation on it, light or dark
    audits = event(lines, "accessibility")
    for scheme in ("light", "dark"):
        assert audits[scheme]["violations"] == [], (scheme, audits[scheme]["violations"])
        assert {"color-contrast", "label", "th-has-data-cells"} <= set(audits[scheme]["passes"])
    assert audits["signedOut"]["violations"] == [], audits["signedOut"]["violations"]

    # its link leads to GraphiQL
    link = urlsplit(event(lines, "link")["url"])  # GraphiQL adds its query as ?q=
    assert (link.netloc, link.path) == (address, "/graphql")

    # and GraphiQL opens a shared link's query (?q=…)
    shared = event(lines, "shared")
    assert shared["editor"] == "query Shared { exchanges }"
    assert "BINANCE" in shared["response"]["data"]["exchanges"]

    # nothing failed, nothing left this machine
    assert event(lines, "problems") == {
        "event": "problems",
        "console": [],
        "pageErrors": [],
        "failedRequests": [],
        "offsite": [],
    }
    for name in (
        "graphiql-query",
        "graphiql-subscription",
        "graphiql-order-updates",
        "dashboard-chart",
        "dashboard-account",
        "dashboard",
        "dashboard-dark",
    ):
        shot = SCREENSHOTS / f"{name}.png"
        assert shot.read_bytes()[:8] == PNG_SIGNATURE, shot
