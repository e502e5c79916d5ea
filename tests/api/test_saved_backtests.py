"""Saved backtests: ``runBacktest(input: {saveAs})``, ``backtests``, ``backtest`` and
``deleteBacktest``, on SQLite and PostgreSQL.

A saved run must read back exactly as the fresh run answered, to the last digit
of every Decimal and float, whatever was imported since.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from graphql_api.auth import Role
from storage import models
from tests.api.test_backtests import backtest_input
from tests.conftest import http_client, user_token
from tests.support.graphql import execute

RESULT = """
totalReturnPct cagrPct sharpe maxDrawdownPct winRatePct tradeCount exposurePct
initialCash finalEquity totalCommission
equityCurve { time equity }
trades { side quantity entryTime entryPrice exitTime exitPrice pnl commission returnPct }
"""
RUN = f"""
mutation ($input: BacktestInput!) {{
  runBacktest(input: $input) {{
    result {{ {RESULT} }}
    saved {{ id name kind symbol {{ code }} from to interval initialCash commission parameters }}
    userErrors {{ field code message }}
  }}
}}
"""
ONE = f"""
query ($id: ID!) {{ backtest(id: $id) {{ id name createdAt result {{ {RESULT} }} }} }}
"""
LIST = """
query ($symbol: String, $kind: StrategyKind, $last: Int) {
  backtests(symbol: $symbol, kind: $kind, last: $last) {
    totalCount
    edges { node { id name kind symbol { code } } }
  }
}
"""
DELETE = """
mutation ($id: ID!) {
  deleteBacktest(id: $id) { deletedBacktestId userErrors { field code message } }
}
"""


async def run(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = (await execute(client, RUN, {"input": backtest_input(**overrides)}))[
        "runBacktest"
    ]
    return payload


async def saved_rows(app: Starlette) -> int:
    async with app.state.services.sessions() as session:
        return len((await session.scalars(models.SavedBacktest.__table__.select())).all())


async def test_a_saved_run_reads_back_exactly_as_it_was_answered(
    client: httpx.AsyncClient,
) -> None:
    fresh = await run(client, saveAs="  moutai 5/20  ")
    assert fresh["userErrors"] == []
    assert fresh["result"]["tradeCount"] > 0  # a run with trades, so they round-trip too
    stored = fresh["saved"]
    assert stored["name"] == "moutai 5/20" and stored["kind"] == "SMA_CROSS"
    assert stored["symbol"] == {"code": "600519.SH"}
    assert stored["parameters"] == {"fast": 5, "slow": 20}
    assert stored["interval"] == "DAY_1" and stored["initialCash"] == "1000000"
    again = (await execute(client, ONE, {"id": stored["id"]}))["backtest"]
    assert again["id"] == stored["id"] and again["name"] == "moutai 5/20"
    assert again["result"] == fresh["result"]  # every metric, point and round trip


async def test_saved_runs_are_listed_newest_first_narrowed_and_deleted(
    client: httpx.AsyncClient,
) -> None:
    first = (await run(client, saveAs="a"))["saved"]["id"]
    second = (await run(client, saveAs="b", kind="EMA_CROSS", parameters={}))["saved"]["id"]
    third = (await run(client, saveAs="c", symbol="601398.SH"))["saved"]["id"]
    everything = (await execute(client, LIST, {}))["backtests"]
    assert [e["node"]["id"] for e in everything["edges"]] == [third, second, first]
    assert everything["totalCount"] == 3
    moutai = (await execute(client, LIST, {"symbol": "600519.sh"}))["backtests"]
    assert [e["node"]["id"] for e in moutai["edges"]] == [second, first]
    ema = (await execute(client, LIST, {"kind": "EMA_CROSS"}))["backtests"]
    assert [e["node"]["name"] for e in ema["edges"]] == ["b"]
    oldest = (await execute(client, LIST, {"last": 1}))["backtests"]
    assert [e["node"]["id"] for e in oldest["edges"]] == [first]

    deleted = (await execute(client, DELETE, {"id": second}))["deleteBacktest"]
    assert deleted == {"deletedBacktestId": second, "userErrors": []}
    assert (await execute(client, ONE, {"id": second}))["backtest"] is None
    again = (await execute(client, DELETE, {"id": second}))["deleteBacktest"]
    assert again["userErrors"][0]["code"] == "NOT_FOUND"


async def test_another_users_runs_do_not_exist_for_you(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    mine = (await run(client, saveAs="mine"))["saved"]["id"]
    async with http_client(app, await user_token(app, "rival", Role.TRADER)) as rival:
        assert (await execute(rival, ONE, {"id": mine}))["backtest"] is None
        assert (await execute(rival, LIST, {}))["backtests"]["totalCount"] == 0
        refused = (await execute(rival, DELETE, {"id": mine}))["deleteBacktest"]
        assert refused["deletedBacktestId"] is None
        assert refused["userErrors"][0]["code"] == "NOT_FOUND"
    assert (await execute(client, ONE, {"id": mine}))["backtest"]["name"] == "mine"


async def test_a_bad_name_or_a_bad_run_stores_nothing(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    for name, code in [
        ("   ", "OUT_OF_RANGE"),
        ("x" * 129, "OUT_OF_RANGE"),
        ("a\u200bb", "INVALID"),
    ]:
        refused = await run(client, saveAs=name)
        assert refused["result"] is None and refused["saved"] is None
        assert refused["userErrors"][0]["field"] == "saveAs"
        assert refused["userErrors"][0]["code"] == code
    unusable = await run(client, saveAs="fine", symbol="NOPE")
    assert unusable["saved"] is None and unusable["userErrors"][0]["code"] == "UNKNOWN_SYMBOL"
    assert await saved_rows(app) == 0
