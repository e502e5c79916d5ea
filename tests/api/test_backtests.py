"""runBacktest, strategyKinds, startStrategy/stopStrategy, importBars and klineSeries
through the real app (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import numpy as np

from graphql_api.market.indicators import atr, bollinger, ema, macd, rsi, sma
from tests.support.graphql import error_codes, execute, post

QUERY_STRATEGY_KINDS = """
{ strategyKinds { kind description parameters { name type default minimum maximum description } } }
"""

MUTATION_RUN_BACKTEST = """
mutation ($input: BacktestInput!) {
  runBacktest(input: $input) {
    result {
      totalReturnPct cagrPct sharpe maxDrawdownPct winRatePct tradeCount exposurePct
      initialCash finalEquity totalCommission
      equityCurve { time equity }
      trades { side quantity entryTime entryPrice exitTime exitPrice pnl commission returnPct }
    }
    userErrors { field code message }
  }
}
"""

MUTATION_CREATE_STRATEGY = """
mutation {
  createStrategy(input: {name: "cross", kind: SMA_CROSS, symbol: "BTCUSDT",
                         parameters: {fast: 5, slow: 20}}) { strategy { id } userErrors { code } }
}
"""

MUTATION_START = """
mutation ($id: ID!) {
  startStrategy(id: $id) { strategy { id status } userErrors { field code message } }
}
"""

MUTATION_STOP = """
mutation ($id: ID!) {
  stopStrategy(id: $id) { strategy { id status } userErrors { field code message } }
}
"""

MUTATION_IMPORT_BARS = """
mutation ($symbol: String!, $csv: String!) {
  importBars(symbol: $symbol, csv: $csv) {
    rowsRead rowsWritten rejected { line reason } userErrors { field code message }
  }
}
"""

QUERY_KLINE_SERIES = """
query ($symbol: String!, $interval: KlineInterval!, $limit: Int!) {
  klineSeries(symbol: $symbol, interval: $interval, limit: $limit) {
    symbol interval times opens highs lows closes volumes
    indicators {
      sma(period: 5) ema(period: 10) rsi
      macd { macd signal histogram }
      bollinger(period: 20, stddev: 2.5) { upper middle lower }
      atr(period: 14)
    }
  }
}
"""


def backtest_input(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "kind": "SMA_CROSS",
        "parameters": {"fast": 5, "slow": 20},
        "symbol": "600519.SH",
        "from": (datetime.now(UTC) - timedelta(days=400)).isoformat(),
        "to": datetime.now(UTC).isoformat(),
    }
    values.update(overrides)
    return values


async def test_strategy_kinds_lists_every_kind_with_its_parameters(
    client: httpx.AsyncClient,
) -> None:
    kinds = {k["kind"]: k for k in (await execute(client, QUERY_STRATEGY_KINDS))["strategyKinds"]}
    assert set(kinds) == {
        "SMA_CROSS",
        "EMA_CROSS",
        "RSI_REVERSION",
        "MACD_CROSS",
        "BOLLINGER_BREAKOUT",
    }
    fast, slow = kinds["SMA_CROSS"]["parameters"]
    assert (fast["name"], fast["type"], fast["default"], fast["minimum"]) == ("fast", "INT", 10, 1)
    assert (slow["name"], slow["default"], slow["maximum"]) == ("slow", 30, 1000)
    assert kinds["BOLLINGER_BREAKOUT"]["parameters"][1]["type"] == "FLOAT"
    assert all(k["description"] for k in kinds.values())


async def test_run_backtest_returns_metrics_curve_and_trades(client: httpx.AsyncClient) -> None:
    data = await execute(client, MUTATION_RUN_BACKTEST, {"input": backtest_input()})
    payload = data["runBacktest"]
    assert payload["userErrors"] == []
    result = payload["result"]
    assert result["tradeCount"] == len(result["trades"]) > 0
    assert result["initialCash"] == "1000000.00"  # at the CNY scale
    final = Decimal(result["finalEquity"])
    assert final == Decimal(result["initialCash"]) + sum(
        Decimal(t["pnl"]) for t in result["trades"]
    )
    assert math.isclose(result["equityCurve"][-1]["equity"], float(final))
    trade = result["trades"][0]
    assert trade["side"] == "LONG" and Decimal(trade["quantity"]) % 100 == 0
    assert trade["entryTime"] < trade["exitTime"]


async def test_run_backtest_reports_bad_input(client: httpx.AsyncClient) -> None:
    data = await execute(
        client,
        MUTATION_RUN_BACKTEST,
        {"input": backtest_input(symbol="NOPE", parameters={"fast": 50, "slow": 5})},
    )
    payload = data["runBacktest"]
    assert payload["result"] is None
    assert {(e["field"], e["code"]) for e in payload["userErrors"]} == {
        ("symbol", "UNKNOWN_SYMBOL"),
        ("parameters.fast", "INVALID_COMBINATION"),
    }
    body = await post(client, MUTATION_RUN_BACKTEST, {"input": backtest_input(parameters=[1])})
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_start_and_stop_a_strategy(client: httpx.AsyncClient) -> None:
    created = await execute(client, MUTATION_CREATE_STRATEGY)
    strategy_id = created["createStrategy"]["strategy"]["id"]
    started = (await execute(client, MUTATION_START, {"id": strategy_id}))["startStrategy"]
    assert started == {"strategy": {"id": strategy_id, "status": "RUNNING"}, "userErrors": []}
    again = (await execute(client, MUTATION_START, {"id": strategy_id}))["startStrategy"]
    assert again["userErrors"] == [
        {"field": "id", "code": "NOT_ALLOWED", "message": "strategy is already RUNNING"}
    ]
    stopped = (await execute(client, MUTATION_STOP, {"id": strategy_id}))["stopStrategy"]
    assert stopped["strategy"]["status"] == "STOPPED"
    missing = (await execute(client, MUTATION_STOP, {"id": "999999"}))["stopStrategy"]
    assert missing == {
        "strategy": None,
        "userErrors": [{"field": "id", "code": "NOT_FOUND", "message": "strategy not found"}],
    }


CSV = "date,open,high,low,close,volume\n2001-01-02,10.00,10.50,9.80,10.20,12300\n"


async def test_import_bars_all_or_nothing(feed_client: httpx.AsyncClient) -> None:
    good = await execute(feed_client, MUTATION_IMPORT_BARS, {"symbol": "600036.SH", "csv": CSV})
    assert good["importBars"] == {
        "rowsRead": 1,
        "rowsWritten": 1,
        "rejected": [],
        "userErrors": [],
    }
    bad_csv = CSV + "2001-01-03,10.00,9.00,9.80,10.20,1\n"
    bad = await execute(feed_client, MUTATION_IMPORT_BARS, {"symbol": "600036.SH", "csv": bad_csv})
    payload = bad["importBars"]
    assert (payload["rowsRead"], payload["rowsWritten"]) == (2, 0)
    assert payload["rejected"] == [{"line": 3, "reason": "high 9.00 is below open or close"}]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [("csv.3", "INVALID")]


async def test_import_bars_needs_a_feed_role(client: httpx.AsyncClient) -> None:
    body = await post(client, MUTATION_IMPORT_BARS, {"symbol": "600036.SH", "csv": CSV})
    assert error_codes(body) == ["FORBIDDEN"]


def _nullable(values: np.ndarray[Any, Any]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


async def test_kline_series_indicators_match_the_indicator_library(
    client: httpx.AsyncClient,
) -> None:
    # given the latest 120 daily bars as columns
    variables = {"symbol": "600519.sh", "interval": "DAY_1", "limit": 120}
    series = (await execute(client, QUERY_KLINE_SERIES, variables))["klineSeries"]
    assert series["symbol"] == "600519.SH" and series["interval"] == "DAY_1"
    count = len(series["times"])
    assert count == 120
    assert all(len(series[column]) == count for column in ("opens", "highs", "lows", "volumes"))
    assert series["times"] == sorted(series["times"])
    # when computing the same indicators on the same bars directly
    close = np.array([float(Decimal(v)) for v in series["closes"]])
    high = np.array([float(Decimal(v)) for v in series["highs"]])
    low = np.array([float(Decimal(v)) for v in series["lows"]])
    got = series["indicators"]
    # then they agree value for value, with null for warm-up
    assert got["sma"] == _nullable(sma(close, 5))
    assert got["sma"][:4] == [None] * 4 and got["sma"][4] is not None
    assert got["ema"] == _nullable(ema(close, 10))
    assert got["rsi"] == _nullable(rsi(close, 14))
    expected_macd = macd(close, 12, 26, 9)
    assert got["macd"] == {
        "macd": _nullable(expected_macd.macd),
        "signal": _nullable(expected_macd.signal),
        "histogram": _nullable(expected_macd.histogram),
    }
    bands = bollinger(close, 20, 2.5)
    assert got["bollinger"] == {
        "upper": _nullable(bands.upper),
        "middle": _nullable(bands.middle),
        "lower": _nullable(bands.lower),
    }
    assert got["atr"] == _nullable(atr(high, low, close, 14))


async def test_kline_series_rejects_bad_indicator_arguments(client: httpx.AsyncClient) -> None:
    query = """
    { klineSeries(symbol: "BTCUSDT", interval: DAY_1, limit: 50) { indicators { sma(period: 0) } } }
    """
    assert error_codes(await post(client, query)) == ["BAD_USER_INPUT"]
    query = """
    { klineSeries(symbol: "BTCUSDT", interval: DAY_1, limit: 50)
      { indicators { macd(fast: 30, slow: 10) { macd } } } }
    """
    assert error_codes(await post(client, query)) == ["BAD_USER_INPUT"]
