"""Ids, cursors, decimals and dates at the edges, through the real app (SQLite and PostgreSQL).

Only ASCII digits are numbers: ``"²"``, ``"９"`` or ``"٣"`` name no order and
no quantity. Valid dates at the ends of the calendar are answered (or refused
as BAD_USER_INPUT when they have no UTC equivalent), never an internal error.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.support.graphql import error_codes, execute, post

NON_ASCII_DIGITS = ["²", "９", "٣", "߁", "１２"]

PLACE_ORDER = """
mutation ($quantity: Decimal!, $strategyId: ID) {
  placeOrder(input: {symbol: "BTCUSDT", side: BUY, type: MARKET, quantity: $quantity,
                     strategyId: $strategyId}) {
    order { id quantity } userErrors { field code }
  }
}
"""


def cursor(kind: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


async def order_count(client: httpx.AsyncClient) -> int:
    data = await execute(client, "{ orders(first: 100) { edges { cursor } } }")
    return len(data["orders"]["edges"])


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
async def test_ids_with_non_ascii_digits_are_bad_user_input(
    client: httpx.AsyncClient, digits: str
) -> None:
    for query in (
        "query ($id: ID!) { order(id: $id) { id } }",
        "query ($id: ID!) { strategy(id: $id) { id } }",
        "mutation ($id: ID!) { cancelOrder(id: $id) { userErrors { code } } }",
        "mutation ($id: ID!) { startStrategy(id: $id) { userErrors { code } } }",
    ):
        body = await post(client, query, {"id": digits})
        assert error_codes(body) == ["BAD_USER_INPUT"], (query, body)
    body = await post(client, PLACE_ORDER, {"quantity": "0.01", "strategyId": digits})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert await order_count(client) == 0


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
async def test_cursors_with_non_ascii_digits_are_bad_user_input(
    client: httpx.AsyncClient, digits: str
) -> None:
    for query, kind in (
        ("query ($after: String) { orders(after: $after) { edges { cursor } } }", "order"),
        ("query ($after: String) { strategies(after: $after) { edges { cursor } } }", "strategy"),
        (
            "query ($after: String) { me { account { trades(after: $after) "
            "{ edges { cursor } } } } }",
            "trade",
        ),
    ):
        body = await post(client, query, {"after": cursor(kind, digits)})
        assert error_codes(body) == ["BAD_USER_INPUT"], (query, body)


async def test_cursors_are_strict_base64(client: httpx.AsyncClient) -> None:
    good = cursor("order", "5")
    query = "query ($after: String) { orders(after: $after) { edges { cursor } } }"
    assert "errors" not in await post(client, query, {"after": good})
    for bad in (good + "!", "²" + good, good[:-1], good.replace("N", "N\n")):
        assert error_codes(await post(client, query, {"after": bad})) == ["BAD_USER_INPUT"], bad


@pytest.mark.parametrize("quantity", ["９", "٣", "0.0١", "１２.5", "1e2", "NaN", "9" * 40, " 1"])
async def test_decimals_take_ascii_digits_only(client: httpx.AsyncClient, quantity: str) -> None:
    # when an order's quantity is written in other digits (or not positionally)
    body = await post(client, PLACE_ORDER, {"quantity": quantity})
    # then it is refused as input, and no order exists
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert await order_count(client) == 0


SERIES = {
    "klines 1m": 'klines(symbol: "BTCUSDT", interval: MINUTE_1, {range}) { time close }',
    "klines 1h": 'klines(symbol: "BTCUSDT", interval: HOUR_1, {range}) { time close }',
    "klines 1d": 'klines(symbol: "600519.SH", interval: DAY_1, {range}) { time close }',
    "klineSeries 15m": 'klineSeries(symbol: "BTCUSDT", interval: MINUTE_15, {range}) { times }',
    "klineSeries 1d": 'klineSeries(symbol: "600519.SH", interval: DAY_1, {range}) { times }',
    "ticks": 'ticks(symbol: "BTCUSDT", {range}) { time last }',
}
CALENDAR_ENDS = [
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T23:59:59+14:00",
]


@pytest.mark.parametrize("field", sorted(SERIES))
async def test_series_answer_at_the_ends_of_the_calendar(
    anonymous_client: httpx.AsyncClient, field: str
) -> None:
    query = "query ($t: DateTime) { " + SERIES[field].replace("{range}", "{bound}: $t") + " }"
    for bound in ("from", "to"):
        for moment in CALENDAR_ENDS:
            body = await post(anonymous_client, query.replace("{bound}", bound), {"t": moment})
            assert "errors" not in body, (bound, moment, body)
    # the whole calendar as one range holds the stored history (the latest bars)
    whole = (
        "query ($f: DateTime, $t: DateTime) { "
        + SERIES[field].replace("{range}", "from: $f, to: $t")
        + " }"
    )
    body = await post(
        anonymous_client, whole, {"f": "0001-01-01T00:00:00Z", "t": "9999-12-31T23:59:59Z"}
    )
    assert "errors" not in body, body
    if field.endswith("1d"):
        assert next(iter(body["data"].values())), "the seeded daily history is in range"


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-00:01"])
async def test_moments_without_a_utc_equivalent_are_bad_user_input(
    anonymous_client: httpx.AsyncClient, moment: str
) -> None:
    for field in ("klines 1m", "klines 1d", "klineSeries 1d", "ticks"):
        query = "query ($t: DateTime) { " + SERIES[field].replace("{range}", "to: $t") + " }"
        body = await post(anonymous_client, query, {"t": moment})
        assert error_codes(body) == ["BAD_USER_INPUT"], (field, body)
        assert "supported range" in body["errors"][0]["message"]


RUN_BACKTEST = """
mutation ($from: DateTime!, $to: DateTime!, $interval: KlineInterval!, $cash: Decimal,
          $quantity: Decimal) {
  runBacktest(input: {kind: SMA_CROSS, parameters: {fast: 2, slow: 3}, symbol: "600519.SH",
                      from: $from, to: $to, interval: $interval, initialCash: $cash,
                      fixedQuantity: $quantity}) {
    result { tradeCount finalEquity }
    userErrors { field code message }
  }
}
"""


@pytest.mark.parametrize("interval", ["DAY_1", "MINUTE_1"])
@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T00:00:01Z", "9999-12-31T23:59:59.999999Z"),
        ("0001-01-01T00:00:00", "0001-01-01T00:00:01"),
    ],
)
async def test_backtests_over_the_whole_calendar(
    client: httpx.AsyncClient, interval: str, start: str, end: str
) -> None:
    body = await post(client, RUN_BACKTEST, {"from": start, "to": end, "interval": interval})
    assert "errors" not in body, body
    payload = body["data"]["runBacktest"]
    if interval == "DAY_1" and start.startswith("0001") and end.startswith("9999"):
        assert payload["result"] is not None, payload  # the year of seeded daily bars
    else:
        assert [e["code"] for e in payload["userErrors"]] == ["OUT_OF_RANGE"], payload


async def test_backtest_amounts_are_bounded(client: httpx.AsyncClient) -> None:
    whole = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "interval": "DAY_1"}
    # a 40-digit amount is not a Decimal this API reads
    body = await post(client, RUN_BACKTEST, {**whole, "cash": "9" * 40})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    # the largest it reads is a user error for a backtest, not an overflow
    huge = "9" * 20 + "." + "9" * 18
    for name in ("cash", "quantity"):
        body = await post(client, RUN_BACKTEST, {**whole, name: huge})
        assert "errors" not in body, body
        codes = [e["code"] for e in body["data"]["runBacktest"]["userErrors"]]
        assert "OUT_OF_RANGE" in codes, body
    # and up to a quadrillion computes exactly
    body = await post(client, RUN_BACKTEST, {**whole, "cash": "1000000000000000"})
    assert body["data"]["runBacktest"]["result"] is not None, body


NUL_ARGUMENTS = [
    ("query ($c: String!) { symbol(code: $c) { code } }", {"c": "A\x00"}),
    ("query ($c: String) { symbols(search: $c) { edges { cursor } } }", {"c": "A\x00"}),
    ("query ($c: String) { orders(symbol: $c) { edges { cursor } } }", {"c": "A\x00"}),
    ("query ($c: String!) { klines(symbol: $c, interval: DAY_1) { close } }", {"c": "A\x00"}),
    ("query ($c: String!) { ticks(symbol: $c) { last } }", {"c": "A\x00"}),
    ('query { symbol(code: "A\\u0000") { code } }', {}),
    (
        "mutation ($c: String!) { createStrategy(input: {name: $c, kind: SMA_CROSS, "
        'symbol: "BTCUSDT"}) { userErrors { code } } }',
        {"c": "A\x00"},
    ),
    (
        'mutation ($p: JSON) { createStrategy(input: {name: "x", kind: SMA_CROSS, '
        'symbol: "BTCUSDT", parameters: $p}) { userErrors { code } } }',
        {"p": {"fast\x00": 1}},
    ),
    (
        'mutation ($c: String) { placeOrder(input: {symbol: "BTCUSDT", side: BUY, '
        'type: MARKET, quantity: "0.01", clientOrderId: $c}) { userErrors { code } } }',
        {"c": "A\x00"},
    ),
]


@pytest.mark.parametrize(("query", "variables"), NUL_ARGUMENTS)
async def test_nul_in_text_arguments_is_bad_user_input(
    client: httpx.AsyncClient, query: str, variables: dict[str, object]
) -> None:
    # PostgreSQL cannot hold U+0000 in text: it used to be an internal error there
    body = await post(client, query, variables)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert await order_count(client) == 0


async def test_nul_in_a_cursor_key_is_bad_user_input(client: httpx.AsyncClient) -> None:
    query = "query ($after: String) { symbols(after: $after) { edges { cursor } } }"
    body = await post(client, query, {"after": cursor("symbol", "A\x00")})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
