"""Account performance: equity snapshots, ``me.account.performance`` and
``closedPositions`` through the real app, with real fills (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.services import Services
from graphql_api.trading.equity import EquitySnapshots, SnapshotKind, end_of_day
from tests.api.test_instruments import place, tick, wait_for_status
from tests.conftest import http_client, user_token
from tests.support.graphql import execute

RECORD = """
mutation { recordEquitySnapshot { snapshots { currency kind cash positionsValue equity } } }
"""
PERFORMANCE = """
query ($currency: String!) {
  me { account { performance(currency: $currency) {
    currency totalReturnPct maxDrawdownPct sharpe winRatePct roundTripCount realizedPnl
    equityCurve { kind cash positionsValue equity }
  } } }
}
"""
CLOSED = """
{ me { account {
  closedPositions { side quantity realizedPnl commission netPnl symbol { code } }
  trades(first: 10) { edges { node { side commission realizedPnl } } }
} } }
"""


def market(symbol: str, side: str, quantity: str) -> dict[str, Any]:
    return {"input": {"symbol": symbol, "side": side, "type": "MARKET", "quantity": quantity}}


async def usdt(client: httpx.AsyncClient) -> dict[str, str]:
    snapshots = (await execute(client, RECORD))["recordEquitySnapshot"]["snapshots"]
    found: dict[str, str] = next(s for s in snapshots if s["currency"] == "USDT")
    return found


async def test_a_round_trip_is_listed_and_counted_and_equity_marks_positions_to_market(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    services: Services = app.state.services
    start = await usdt(client)
    assert start["kind"] == "INTRADAY" and Decimal(start["positionsValue"]) == 0
    await services.ingestor.ingest([tick("BTCUSDT", "95000.00")])
    bought = await place(client, market("BTCUSDT", "BUY", "0.1"))
    await services.ingestor.ingest([tick("BTCUSDT", "95000.00")])  # a MARKET order's tick
    await wait_for_status(client, bought["id"], "FILLED")
    # held: the position counts at the last price
    await services.ingestor.ingest([tick("BTCUSDT", "96000.00")])
    held = await usdt(client)
    assert Decimal(held["positionsValue"]) == Decimal("9600.00")
    assert Decimal(held["equity"]) == Decimal(held["cash"]) + Decimal("9600.00")
    sold = await place(client, market("BTCUSDT", "SELL", "0.1"))
    await services.ingestor.ingest([tick("BTCUSDT", "96000.00")])
    await wait_for_status(client, sold["id"], "FILLED")
    flat = await usdt(client)
    assert Decimal(flat["positionsValue"]) == 0

    data = (await execute(client, CLOSED))["me"]["account"]
    fills = [edge["node"] for edge in data["trades"]["edges"]]
    [trip] = data["closedPositions"]
    assert trip["side"] == "LONG" and Decimal(trip["quantity"]) == Decimal("0.1")
    assert trip["symbol"] == {"code": "BTCUSDT"}
    assert Decimal(trip["commission"]) == sum(Decimal(f["commission"]) for f in fills)
    assert Decimal(trip["realizedPnl"]) == sum(Decimal(f["realizedPnl"]) for f in fills)
    assert Decimal(trip["netPnl"]) == Decimal(trip["realizedPnl"]) - Decimal(trip["commission"])
    # the account's cash moved by exactly the trip's net P&L
    assert Decimal(flat["cash"]) - Decimal(start["cash"]) == Decimal(trip["netPnl"])

    found = (await execute(client, PERFORMANCE, {"currency": "usdt"}))["me"]["account"][
        "performance"
    ]
    assert found["currency"] == "USDT" and found["roundTripCount"] == 1
    assert found["winRatePct"] == (100.0 if Decimal(trip["netPnl"]) > 0 else 0.0)
    assert Decimal(found["realizedPnl"]) == Decimal(trip["netPnl"])
    curve = found["equityCurve"]
    assert [point["equity"] for point in curve[-3:]] == [
        start["equity"],
        held["equity"],
        flat["equity"],
    ]
    first, last = Decimal(curve[0]["equity"]), Decimal(curve[-1]["equity"])
    assert abs(found["totalReturnPct"] - float((last - first) / first * 100)) < 1e-9


async def test_end_of_day_snapshots_are_taken_once_per_day_and_are_private(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    services: Services = app.state.services
    snapshots = EquitySnapshots(services.sessions, services.catalog, services.timeseries)
    midnight = end_of_day(datetime(2026, 3, 2, 15, tzinfo=UTC))
    assert midnight == datetime(2026, 3, 3, tzinfo=UTC)
    first = await snapshots.record(SnapshotKind.END_OF_DAY, midnight)
    assert {row.currency for row in first if row.user_id == services.demo_user_id} >= {"USDT"}
    # a second attempt at the same midnight (another process, a restart) adds nothing
    assert await snapshots.record(SnapshotKind.END_OF_DAY, midnight) == []
    await snapshots.record(SnapshotKind.END_OF_DAY, midnight + timedelta(days=1))
    found = (await execute(client, PERFORMANCE, {"currency": "USDT"}))["me"]["account"][
        "performance"
    ]
    daily = [p for p in found["equityCurve"] if p["kind"] == "END_OF_DAY"]
    assert len(daily) >= 2
    assert found["maxDrawdownPct"] == 0.0 and found["roundTripCount"] == 0
    async with http_client(app, await user_token(app, "someone", Role.TRADER)) as other:
        theirs = (await execute(other, PERFORMANCE, {"currency": "USDT"}))["me"]["account"]
    # a new account has none of the demo user's points (none of its own yet)
    assert theirs["performance"]["equityCurve"] == []
    assert theirs["performance"]["totalReturnPct"] is None


RESET = """
mutation ($userId: ID) {
  resetAccount(userId: $userId) { canceledOrders { id status } userErrors { field code } }
}
"""
ACCOUNT = """
{ me { account {
  balances { currency cash reserved }
  positions { quantity }
  closedPositions { side }
  trades(first: 10) { totalCount }
} } }
"""


def limit(symbol: str, side: str, quantity: str, price: str) -> dict[str, Any]:
    return {
        "input": {
            "symbol": symbol,
            "side": side,
            "type": "LIMIT",
            "quantity": quantity,
            "limitPrice": price,
        }
    }


async def test_a_reset_starts_the_account_over_and_keeps_its_history(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    services: Services = app.state.services
    # given a position (one fill) and a resting order with cash reserved
    await services.ingestor.ingest([tick("BTCUSDT", "95000.00")])
    bought = await place(client, market("BTCUSDT", "BUY", "0.1"))
    await services.ingestor.ingest([tick("BTCUSDT", "95000.00")])
    await wait_for_status(client, bought["id"], "FILLED")
    resting = await place(client, limit("BTCUSDT", "BUY", "0.1", "90000.00"))
    # when the account is reset
    reset = (await execute(client, RESET))["resetAccount"]
    assert reset == {
        "canceledOrders": [{"id": resting["id"], "status": "CANCELED"}],
        "userErrors": [],
    }
    # then cash is back to its start, nothing is held or reserved, and the fills stay
    account = (await execute(client, ACCOUNT))["me"]["account"]
    assert {
        (b["currency"], Decimal(b["cash"]), Decimal(b["reserved"])) for b in account["balances"]
    } == {(currency, Decimal(1_000_000), Decimal(0)) for currency in ("CNY", "USDT")}
    assert account["positions"] == [] and account["trades"]["totalCount"] == 1
    assert account["closedPositions"] == []  # the long never closed: the reset ended it
    # the canceled order never fills, even on a tick that crosses it
    await services.ingestor.ingest([tick("BTCUSDT", "89000.00")])
    await asyncio.sleep(0.5)  # what the matcher would take to fill it
    after = (await execute(client, ACCOUNT))["me"]["account"]
    assert after["trades"]["totalCount"] == 1 and after["positions"] == []
    # and the curve shows the fresh start at once
    found = (await execute(client, PERFORMANCE, {"currency": "USDT"}))["me"]["account"]
    assert Decimal(found["performance"]["equityCurve"][-1]["equity"]) == Decimal(1_000_000)


async def test_only_an_admin_resets_another_users_account(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    async with http_client(app, await user_token(app, "rival", Role.TRADER)) as rival:
        demo_id = str(app.state.services.demo_user_id)
        refused = (await execute(rival, RESET, {"userId": demo_id}))["resetAccount"]
        assert refused["userErrors"] == [{"field": "userId", "code": "NOT_FOUND"}]
    async with http_client(app, await user_token(app, "boss", Role.ADMIN)) as admin:
        done = (await execute(admin, RESET, {"userId": demo_id}))["resetAccount"]
        assert done["userErrors"] == []
        unknown = (await execute(admin, RESET, {"userId": "999999"}))["resetAccount"]
        assert unknown["userErrors"] == [{"field": "userId", "code": "NOT_FOUND"}]
