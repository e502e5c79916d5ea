"""Market data queries through the real app and database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from starlette.applications import Starlette

from graphql_api.services import Services
from storage.timeseries import Tick
from tests.support.graphql import error_codes, execute, post

QUERY_SYMBOLS = """
query ($first: Int!, $after: String, $exchange: String, $search: String) {
  symbols(first: $first, after: $after, exchange: $exchange, search: $search) {
    edges { cursor node { code name exchange currency tickSize lotSize } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

QUERY_KLINES = """
query ($symbol: String!, $interval: KlineInterval!, $from: DateTime, $to: DateTime, $limit: Int!) {
  klines(symbol: $symbol, interval: $interval, from: $from, to: $to, limit: $limit) {
    time open high low close volume tradeCount
  }
}
"""


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


async def test_symbols_pages_through_all_seeded_symbols(client: httpx.AsyncClient) -> None:
    # given a seeded database with at least 20 symbols on 3 exchanges
    codes: list[str] = []
    after = None
    # when paging 7 at a time
    while True:
        data = await execute(client, QUERY_SYMBOLS, {"first": 7, "after": after})
        connection = data["symbols"]
        codes += [edge["node"]["code"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    # then every symbol appears once, in code order
    assert len(codes) >= 20
    assert codes == sorted(set(codes))
    assert {"600519.SH", "000001.SZ", "BTCUSDT"} <= set(codes)
    exchanges = (await execute(client, "{ exchanges }"))["exchanges"]
    assert len(exchanges) >= 3


async def test_symbols_filter_by_exchange_and_search(client: httpx.AsyncClient) -> None:
    data = await execute(client, QUERY_SYMBOLS, {"first": 50, "exchange": "SZSE"})
    nodes = [edge["node"] for edge in data["symbols"]["edges"]]
    assert nodes and all(node["exchange"] == "SZSE" for node in nodes)
    data = await execute(client, QUERY_SYMBOLS, {"first": 50, "search": "moutai"})
    assert [edge["node"]["code"] for edge in data["symbols"]["edges"]] == ["600519.SH"]
    node = data["symbols"]["edges"][0]["node"]
    assert (node["tickSize"], node["lotSize"], node["currency"]) == ("0.01", "100", "CNY")


async def test_symbol_search_is_literal_text(client: httpx.AsyncClient) -> None:
    # given symbols whose codes and names hold neither LIKE wildcard nor its escape char
    async def found(search: str) -> list[str]:
        data = await execute(client, QUERY_SYMBOLS, {"first": 100, "search": search})
        return [edge["node"]["code"] for edge in data["symbols"]["edges"]]

    # then the wildcards and the escape char match only themselves
    for search in ("_", "%", "%%", "6_0", "600%", "\\", "/%", "/_", "//", "\\%"):
        assert await found(search) == [], search
    # while ordinary text, the escape char included, matches anywhere in the code or name
    assert await found("0519") == ["600519.SH"]
    assert await found(".sh")
    assert "BTCUSDT" in await found(" / tether")  # "Bitcoin / Tether"


async def test_page_size_over_the_cap_is_a_bad_user_input_error(client: httpx.AsyncClient) -> None:
    body = await post(client, QUERY_SYMBOLS, {"first": 101})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None


async def test_malformed_cursor_is_a_bad_user_input_error(client: httpx.AsyncClient) -> None:
    body = await post(client, QUERY_SYMBOLS, {"first": 5, "after": "not-a-cursor"})
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_unknown_symbol_is_null(client: httpx.AsyncClient) -> None:
    data = await execute(
        client, '{ symbol(code: "NOPE.XX") { code } quote(symbol: "NOPE") { last } }'
    )
    assert data == {"symbol": None, "quote": None}


async def test_quote_ticks_and_klines_reflect_ingested_ticks(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    # given ticks in two one-minute buckets, written through the ingestor
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    prices = ["100.01", "100.50", "99.90", "100.20", "101.00", "100.70"]
    ticks = [
        Tick(
            "600519.SH",
            base + timedelta(seconds=20 * i),
            Decimal(p),
            Decimal(p),
            Decimal(p),
            Decimal(100 * (i + 1)),
        )
        for i, p in enumerate(prices)
    ]
    await services_of(app).ingestor.ingest(ticks)

    # when querying the quote, the ticks and the 1m klines
    data = await execute(
        client,
        '{ quote(symbol: "600519.SH") { last time } '
        ' ticks(symbol: "600519.SH", limit: 4) { last volume } }',
    )
    bars = (
        await execute(
            client,
            QUERY_KLINES,
            {"symbol": "600519.SH", "interval": "MINUTE_1", "limit": 10, "from": base.isoformat()},
        )
    )["klines"]

    # then the quote is the latest tick, ticks are the latest four ascending
    assert data["quote"]["last"] == "100.70"
    assert [t["last"] for t in data["ticks"]] == ["99.90", "100.20", "101.00", "100.70"]
    # and the bars aggregate exactly: [0s,20s,40s] then [60s,80s,100s]
    assert bars == [
        {
            "time": base.isoformat(),
            "open": "100.01",
            "high": "100.50",
            "low": "99.90",
            "close": "99.90",
            "volume": "600",
            "tradeCount": 3,
        },
        {
            "time": (base + timedelta(minutes=1)).isoformat(),
            "open": "100.20",
            "high": "101.00",
            "low": "100.20",
            "close": "100.70",
            "volume": "1500",
            "tradeCount": 3,
        },
    ]


async def test_daily_klines_come_from_stored_history(client: httpx.AsyncClient) -> None:
    bars = (
        await execute(
            client, QUERY_KLINES, {"symbol": "BTCUSDT", "interval": "DAY_1", "limit": 400}
        )
    )["klines"]
    # about a year of daily bars, ascending, each internally consistent
    assert len(bars) >= 300
    times = [bar["time"] for bar in bars]
    assert times == sorted(times)
    for bar in bars:
        high, low = Decimal(bar["high"]), Decimal(bar["low"])
        assert low <= Decimal(bar["open"]) <= high and low <= Decimal(bar["close"]) <= high
        assert bar["tradeCount"] is None


async def test_series_arguments_are_checked(client: httpx.AsyncClient) -> None:
    body = await post(
        client, QUERY_KLINES, {"symbol": "BTCUSDT", "interval": "MINUTE_1", "limit": 0}
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    body = await post(
        client,
        QUERY_KLINES,
        {
            "symbol": "BTCUSDT",
            "interval": "MINUTE_1",
            "limit": 5,
            "from": "2026-01-02T00:00:00Z",
            "to": "2026-01-01T00:00:00Z",
        },
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    body = await post(
        client,
        QUERY_KLINES,
        {"symbol": "BTCUSDT", "interval": "MINUTE_1", "limit": 5, "from": "2026-01-01T00:00:00"},
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]  # a time without an offset is ambiguous
    body = await post(
        client, QUERY_KLINES, {"symbol": "BTCUSDT", "interval": "MINUTE_2", "limit": 5}
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_invalid_documents_and_bodies_are_refused(client: httpx.AsyncClient) -> None:
    body = await post(client, "{ symbols { edges { node { nope } } } }")
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    body = await post(client, "{ symbols ")
    assert error_codes(body) == ["GRAPHQL_PARSE_FAILED"]
    response = await client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
