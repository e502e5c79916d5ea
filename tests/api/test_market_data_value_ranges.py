"""ingestTicks and importBars refuse times outside the window and numbers the stores would
round; a bad stored row never breaks market-data reads (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from starlette.applications import Starlette

from graphql_api.services import Services
from tests.support.graphql import error_codes, execute, post

MUTATION_INGEST = """
mutation ($ticks: [TickInput!]!) {
  ingestTicks(ticks: $ticks) { accepted userErrors { field code message } }
}
"""

MUTATION_IMPORT_BARS = """
mutation ($symbol: String!, $csv: String!) {
  importBars(symbol: $symbol, csv: $csv) {
    rowsRead rowsWritten rejected { line reason } userErrors { field code message }
  }
}
"""

QUERY_MARKET = """
query ($symbol: String!) {
  quote(symbol: $symbol) { last time }
  ticks(symbol: $symbol, limit: 5) { last time }
  klines(symbol: $symbol, interval: MINUTE_1, limit: 5) { time volume }
  symbols(first: 30) { edges { node { code quote { last time } } } }
}
"""

MUTATION_PLACE_ORDER = """
mutation ($symbol: String!) {
  placeOrder(input: {symbol: $symbol, side: BUY, type: MARKET, quantity: "0.01"}) {
    order { status } userErrors { code }
  }
}
"""

QUERY_DAILY = """
query ($symbol: String!, $from: DateTime!, $to: DateTime!) {
  klines(symbol: $symbol, interval: DAY_1, from: $from, to: $to) { time volume close }
}
"""

SYMBOL = "BTCUSDT"
HEADER = "date,open,high,low,close,volume\n"


def recent(seconds: float = 60) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def tick(time: str, last: str = "95000.10", volume: str = "1") -> dict[str, Any]:
    return {"symbol": SYMBOL, "time": time, "last": last, "volume": volume}


async def ingest(client: httpx.AsyncClient, *ticks: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = (await execute(client, MUTATION_INGEST, {"ticks": list(ticks)}))[
        "ingestTicks"
    ]
    return payload


def codes(payload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(error["field"], error["code"]) for error in payload["userErrors"]]


async def test_a_tick_from_year_999_is_refused_and_market_data_stays_readable(
    feed_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    # given a current tick
    assert (await ingest(feed_client, tick(recent())))["accepted"] == 1
    # when a feed sends one stamped in year 999 (and one from 1970, an epoch-zero bug)
    refused = await ingest(
        feed_client, tick("0999-01-01T00:00:00Z"), tick("1970-01-01T00:00:00+08:00")
    )
    # then the batch is refused with typed errors, and every read still answers
    assert refused["accepted"] == 0
    assert codes(refused) == [("ticks.0.time", "OUT_OF_RANGE"), ("ticks.1.time", "OUT_OF_RANGE")]
    data = await execute(client, QUERY_MARKET, {"symbol": SYMBOL})
    assert data["quote"]["last"] == "95000.10"
    assert data["quote"]["time"].startswith(str(datetime.now(UTC).year))
    order = (await execute(client, MUTATION_PLACE_ORDER, {"symbol": SYMBOL}))["placeOrder"]
    assert order["userErrors"] == []


async def test_ticks_are_accepted_up_to_the_configured_age(
    app: Starlette, feed_client: httpx.AsyncClient
) -> None:
    services: Services = app.state.services
    assert services.settings.max_tick_age_years == 30
    eleven_years_ago = (datetime.now(UTC) - timedelta(days=11 * 366)).isoformat()
    assert (await ingest(feed_client, tick(eleven_years_ago)))["accepted"] == 1
    thirty_one = (datetime.now(UTC) - timedelta(days=31 * 366)).isoformat()
    assert codes(await ingest(feed_client, tick(thirty_one))) == [("ticks.0.time", "OUT_OF_RANGE")]


async def test_numbers_beyond_the_stores_digits_are_refused_not_rounded(
    feed_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    # past what any amount has: refused as input, before the ingest rules
    body = await post(feed_client, MUTATION_INGEST, {"ticks": [tick(recent(), volume="1" * 40)]})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    # past what the stores hold exactly
    refused = await ingest(
        feed_client,
        tick(recent(), volume="1" * 19),
        tick(recent(), volume="0.00000000001"),
        tick(recent(), last="1" * 19 + ".00"),
    )
    assert codes(refused) == [
        ("ticks.0.volume", "OUT_OF_RANGE"),
        ("ticks.1.volume", "INVALID_PRECISION"),
        ("ticks.2.last", "OUT_OF_RANGE"),
        ("ticks.2.bid", "OUT_OF_RANGE"),
        ("ticks.2.ask", "OUT_OF_RANGE"),
    ]
    # the largest accepted volumes add up exactly in a bar
    biggest = "999999999999999999.9999999999"
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    stamps = [(now + timedelta(seconds=s)).isoformat() for s in (1, 2)]
    accepted = await ingest(feed_client, *(tick(s, volume=biggest) for s in stamps))
    assert accepted["accepted"] == 2
    query = """query ($from: DateTime!) {
      klines(symbol: "BTCUSDT", interval: MINUTE_1, from: $from, limit: 1) { volume } }"""
    bars = (await execute(client, query, {"from": now.isoformat()}))["klines"]
    assert bars == [{"volume": "1999999999999999999.9999999998"}]


async def test_import_bars_refuses_dates_outside_the_window_and_overlong_numbers(
    feed_client: httpx.AsyncClient,
) -> None:
    csv = HEADER + (
        "0001-01-01,10.00,10.50,9.80,10.20,100\n"
        "9999-12-31,10.00,10.50,9.80,10.20,100\n"
        f"2001-01-02,10.00,10.50,9.80,10.20,{'1' * 40}\n"
        "2001-01-03,10.00,10.50,9.80,10.20,0.00000000001\n"
    )
    payload = (
        await execute(feed_client, MUTATION_IMPORT_BARS, {"symbol": "600036.SH", "csv": csv})
    )["importBars"]
    assert payload["rowsWritten"] == 0
    assert codes(payload) == [
        ("csv.2", "OUT_OF_RANGE"),
        ("csv.3", "OUT_OF_RANGE"),
        ("csv.4", "OUT_OF_RANGE"),
        ("csv.5", "INVALID_PRECISION"),
    ]


async def test_import_bars_accepts_a_byte_order_mark(
    feed_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    csv = "\ufeff" + HEADER + "2001-01-02,10.00,10.50,9.80,10.20,12300\n"
    payload = (
        await execute(feed_client, MUTATION_IMPORT_BARS, {"symbol": "600036.SH", "csv": csv})
    )["importBars"]
    assert (payload["rowsWritten"], payload["userErrors"]) == (1, [])
    variables = {
        "symbol": "600036.SH",
        "from": "2001-01-02T00:00:00Z",
        "to": "2001-01-03T00:00:00Z",
    }
    bars = (await execute(client, QUERY_DAILY, variables))["klines"]
    assert bars == [{"time": "2001-01-02T00:00:00+00:00", "volume": "12300", "close": "10.20"}]


async def test_a_bad_row_stored_by_hand_does_not_break_reads(
    app: Starlette, feed_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    # given a good tick, then rows only hand-made SQL can store, each newer than it
    assert (await ingest(feed_client, tick(recent()), tick(recent(30), last="95000.20")))[
        "accepted"
    ] == 2
    services: Services = app.state.services
    async with services.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text(
                    "INSERT INTO ticks (symbol, time, last, bid, ask, volume) VALUES "
                    "('BTCUSDT', '10000-01-01+00', 1, 1, 1, 1), "
                    "('BTCUSDT', 'infinity', 1, 1, 1, 1), "
                    "('BTCUSDT', now() + interval '1 second', 'NaN', 1, 1, 1)"
                )
            )
        else:
            await connection.execute(
                text(
                    "INSERT INTO ticks (symbol, time, last, bid, ask, volume) VALUES "
                    "('BTCUSDT', '999-01-01T00:00:00.000000Z', '1', '1', '1', '1'), "
                    "('BTCUSDT', '2999-99-99T00:00:00.000000Z', '1', '1', '1', '1'), "
                    "('BTCUSDT', '2998-01-01T00:00:00.000000Z', 'x', '1', '1', '1')"
                )
            )
    # when reading market data and trading the symbol
    body = await post(client, QUERY_MARKET, {"symbol": SYMBOL})
    order = await post(client, MUTATION_PLACE_ORDER, {"symbol": SYMBOL})
    # then nothing fails: the quote is the newest readable tick, other symbols are untouched
    assert "errors" not in body, body["errors"]
    assert body["data"]["quote"]["last"] == "95000.20"
    assert [t["last"] for t in body["data"]["ticks"]][-2:] == ["95000.10", "95000.20"]
    assert body["data"]["klines"]
    assert len(body["data"]["symbols"]["edges"]) > 1
    assert "errors" not in order and order["data"]["placeOrder"]["userErrors"] == []


async def test_extreme_read_bounds_are_answered(client: httpx.AsyncClient) -> None:
    query = """query ($from: DateTime, $to: DateTime) {
      klines(symbol: "BTCUSDT", interval: HOUR_1, from: $from, to: $to) { time }
      ticks(symbol: "BTCUSDT", from: $from, to: $to) { time } }"""
    for bounds in (
        {"from": "9999-12-31T23:30:00+00:00", "to": None},
        {"from": None, "to": "9999-12-31T23:59:59.999999+00:00"},
        {"from": "0001-01-01T00:00:00+00:00", "to": "0001-01-01T01:00:00+00:00"},
    ):
        body = await post(client, query, bounds)
        assert "errors" not in body, (bounds, body["errors"])
