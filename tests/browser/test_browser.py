"""GraphiQL and the live page in a real browser: Debian's Chromium, driven by playwright-core.

``drive.mjs`` (Node) does what a person would: in GraphiQL it opens the docs,
types a token into the Headers tab, runs a query, a ``ticks`` subscription and an
``orderUpdates`` subscription (which only works if the token went in
``connection_init``); then it watches prices change on ``/``, audits that page
with axe-core and follows its link to GraphiQL. This test feeds the ticks and
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
# The symbol the driver watches, and one more for the live page's other rows.
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


async def test_graphiql_and_the_live_page_work_in_chromium(
    chromium: str, driver: Path, web_server: tuple[str, Starlette]
) -> None:
    address, app = web_server
    services: Services = app.state.services
    for stale in SCREENSHOTS.glob("*.png"):
        stale.unlink()
    env = {
        "CHROMIUM": chromium,
        "QUANTGRAPH_TOKEN": await login_token(app),
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

    # the live page's row of the fed symbol took new ticks
    live = event(lines, "live")
    assert live["status"] == "Live"
    rows = {row["symbol"]: row for row in live["rows"]}
    assert {SYMBOL, "ETHUSDT"} <= rows.keys()
    row = rows[SYMBOL]
    assert row["ticks"] >= 2 and row["last"] in fed, (row, fed)
    assert row["name"] == "Bitcoin / Tether"
    assert row["change"][0] in "+−±", row  # against the seeded last daily close
    assert row["time"] is not None

    # axe-core finds no WCAG A/AA (or best-practice) violation on it, light or dark
    audits = event(lines, "accessibility")
    for scheme in ("light", "dark"):
        assert audits[scheme]["violations"] == [], (scheme, audits[scheme]["violations"])
        assert {"color-contrast", "link-name", "th-has-data-cells"} <= set(audits[scheme]["passes"])

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
        "live",
        "live-dark",
    ):
        shot = SCREENSHOTS / f"{name}.png"
        assert shot.read_bytes()[:8] == PNG_SIGNATURE, shot
