"""Instrument administration through GraphQL (SQLite and PostgreSQL): listing a symbol
and trading, importing and backtesting it; halts; tick and lot size changes against
resting orders; validation; the audit; and who may do any of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.market.symbols import SymbolSpec
from graphql_api.platform.settings import Settings
from graphql_api.services import Services
from storage import models
from storage.timeseries import Tick
from tests.conftest import (
    http_client,
    login_token,
    make_settings,
    postgres_database,
    running_app,
    user_token,
)
from tests.support.graphql import error_codes, execute, post

SESSION = "session { timezone offSessionOrders windows { days open close } }"
SYMBOL = f"symbol {{ code name exchange currency tickSize lotSize tradable {SESSION} }}"
ALL_DAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
# Trading around the clock, days ending at 20:00 UTC: nothing here depends on the hour.
AROUND_THE_CLOCK = {
    "timezone": "UTC",
    "windows": [{"days": ALL_DAYS, "open": "20:00", "close": "20:00"}],
}


def session_with(**overrides: Any) -> dict[str, Any]:
    return {**AROUND_THE_CLOCK, **overrides}


def window(days: list[str], opens: str, closes: str) -> dict[str, Any]:
    return {"days": days, "open": opens, "close": closes}


ERRORS = "userErrors { field code message }"
CREATE = f"""
mutation ($input: CreateSymbolInput!) {{ createSymbol(input: $input) {{ {SYMBOL} {ERRORS} }} }}
"""
UPDATE = f"""
mutation ($input: UpdateSymbolInput!) {{
  updateSymbol(input: $input) {{ {SYMBOL} canceledOrders {ERRORS} }}
}}
"""
HALT = f"mutation ($code: String!) {{ haltSymbol(code: $code) {{ {SYMBOL} {ERRORS} }} }}"
RESUME = f"mutation ($code: String!) {{ resumeSymbol(code: $code) {{ {SYMBOL} {ERRORS} }} }}"
AUDIT = """
query ($symbol: String, $first: Int!, $after: String) {
  symbolAudit(symbol: $symbol, first: $first, after: $after) {
    edges { node { id symbol action actorId actorName at before after } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status rejectReason } userErrors { field code } }
}
"""
ORDER = """
query ($id: ID!) { order(id: $id) { status rejectReason filledQuantity averageFillPrice } }
"""
BALANCES = "{ me { account { balances { currency cash } } } }"
IMPORT_BARS = """
mutation ($symbol: String!, $csv: String!) {
  importBars(symbol: $symbol, csv: $csv) { rowsRead rowsWritten userErrors { field code message } }
}
"""
BACKTEST = """
mutation ($input: BacktestInput!) {
  runBacktest(input: $input) { result { tradeCount initialCash finalEquity } userErrors { code } }
}
"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, START_CASH_BY_CURRENCY={"USD": "100000"})


@pytest.fixture
async def admin(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app, await user_token(app, "root", Role.ADMIN)) as http:
        yield http


def aapl(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "code": "aapl",
        "name": "Apple Inc.",
        "exchange": "nasdaq",
        "currency": "usd",
        "tickSize": "0.010",
        "lotSize": "1",
        "session": AROUND_THE_CLOCK,
    }
    values.update(overrides)
    return values


def daily_csv(days: int) -> str:
    """A gently rising and falling price, so an SMA cross trades."""
    start = date.today() - timedelta(days=days + 5)
    rows = ["date,open,high,low,close,volume"]
    for i in range(days):
        price = Decimal(150) + Decimal(i % 40 if (i // 40) % 2 == 0 else 40 - i % 40)
        day = start + timedelta(days=i)
        rows.append(f"{day},{price},{price + 1},{price - 1},{price},1000")
    return "\n".join(rows) + "\n"


def limit_order(symbol: str, side: str, quantity: str, price: str) -> dict[str, Any]:
    return {
        "input": {
            "symbol": symbol,
            "side": side,
            "type": "LIMIT",
            "quantity": quantity,
            "limitPrice": price,
        }
    }


async def place(client: httpx.AsyncClient, variables: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = (await execute(client, PLACE, variables))["placeOrder"]
    assert payload["userErrors"] == [], payload["userErrors"]
    order: dict[str, Any] = payload["order"]
    return order


async def order_status(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await execute(client, ORDER, {"id": order_id}))["order"]
    return found


async def symbol_count(app: Starlette) -> int:
    services: Services = app.state.services
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(models.Symbol)) or 0)


async def test_an_admin_lists_aapl_and_it_is_imported_backtested_and_funded(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, app: Starlette
) -> None:
    # given no USD symbol yet, the trader has no USD
    before = (await execute(client, BALANCES))["me"]["account"]["balances"]
    assert "USD" not in {b["currency"] for b in before}
    # when an admin lists AAPL (codes in any case, sizes canonicalised)
    created = (await execute(admin, CREATE, {"input": aapl()}))["createSymbol"]
    # then it is listed and tradable
    assert created["userErrors"] == []
    assert created["symbol"] == {
        "code": "AAPL",
        "name": "Apple Inc.",
        "exchange": "NASDAQ",
        "currency": "USD",
        "tickSize": "0.01",
        "lotSize": "1",
        "tradable": True,
        "session": {**AROUND_THE_CLOCK, "offSessionOrders": "REFUSE"},
    }
    # every existing account got USD at the configured start cash, and so does a new one
    balances = {
        b["currency"]: b["cash"]
        for b in (await execute(client, BALANCES))["me"]["account"]["balances"]
    }
    assert Decimal(balances["USD"]) == Decimal(100000)
    async with http_client(app, await user_token(app, "newcomer", Role.TRADER)) as newcomer:
        fresh = (await execute(newcomer, BALANCES))["me"]["account"]["balances"]
        assert {b["currency"]: Decimal(b["cash"]) for b in fresh}["USD"] == Decimal(100000)
    # its daily bars can be imported (an ADMIN may feed) and backtested
    imported = await execute(admin, IMPORT_BARS, {"symbol": "AAPL", "csv": daily_csv(200)})
    assert imported["importBars"] == {"rowsRead": 200, "rowsWritten": 200, "userErrors": []}
    backtest = {
        "kind": "SMA_CROSS",
        "parameters": {"fast": 5, "slow": 20},
        "symbol": "AAPL",
        "from": (datetime.now(UTC) - timedelta(days=400)).isoformat(),
        "to": datetime.now(UTC).isoformat(),
        "initialCash": "100000",
    }
    result = (await execute(client, BACKTEST, {"input": backtest}))["runBacktest"]
    assert result["userErrors"] == []
    assert result["result"]["tradeCount"] > 0
    # and a trader can place an order on it right away (banded around the last close, 189)
    order = await place(client, limit_order("AAPL", "BUY", "10", "185.00"))
    assert (order["status"], order["rejectReason"]) == ("NEW", None)
    # and the matcher, running since before AAPL existed, follows its ticks
    services: Services = app.state.services
    await services.ingestor.ingest([tick("AAPL", "184.50")])
    filled = await wait_for_status(client, order["id"], "FILLED")
    assert filled["averageFillPrice"] == "184.50"


async def test_bad_input_is_refused_with_typed_errors_and_writes_nothing(
    admin: httpx.AsyncClient, app: Starlette
) -> None:
    count = await symbol_count(app)
    cases: list[tuple[dict[str, Any], set[tuple[str, str]]]] = [
        (aapl(code="bad code!"), {("code", "INVALID")}),
        (aapl(code=""), {("code", "INVALID")}),
        (aapl(code="X" * 33), {("code", "INVALID")}),
        (aapl(exchange="NAS DAQ"), {("exchange", "INVALID")}),
        (aapl(currency="US"), {("currency", "INVALID")}),
        (aapl(currency="dollars!"), {("currency", "INVALID")}),
        (aapl(name=" "), {("name", "OUT_OF_RANGE")}),
        (aapl(name="A" * 129), {("name", "OUT_OF_RANGE")}),
        (aapl(name="Apple\u202eInc"), {("name", "INVALID")}),
        (aapl(tickSize="0"), {("tickSize", "OUT_OF_RANGE")}),
        (aapl(tickSize="-0.01"), {("tickSize", "OUT_OF_RANGE")}),
        (aapl(lotSize="1" + "0" * 19), {("lotSize", "OUT_OF_RANGE")}),
        (aapl(tickSize="0.00000000001"), {("tickSize", "INVALID_PRECISION")}),
        (aapl(session=session_with(timezone="Mars/Olympus")), {("session.timezone", "INVALID")}),
        (aapl(session=session_with(timezone="../etc/passwd")), {("session.timezone", "INVALID")}),
        (aapl(session=session_with(timezone="")), {("session.timezone", "INVALID")}),
        (aapl(session=session_with(windows=[])), {("session.windows", "INVALID")}),
        (
            aapl(session=session_with(windows=[window([], "09:30", "16:00")])),
            {("session.windows.0.days", "INVALID")},
        ),
        (
            aapl(session=session_with(windows=[window(["MON"], "24:00", "16:00")])),
            {("session.windows.0.open", "INVALID")},
        ),
        (
            aapl(session=session_with(windows=[window(["MON"], "09:30", "24:01")])),
            {("session.windows.0.close", "INVALID")},
        ),
        (
            aapl(session=session_with(windows=[window(["MON"], "9.30", "16:00")])),
            {("session.windows.0.open", "INVALID")},
        ),
        (
            aapl(session=session_with(windows=[window(["MON"], "09:30", "16:00")] * 33)),
            {("session.windows", "INVALID")},
        ),
        (aapl(code="BTCUSDT"), {("code", "CONFLICT")}),
        (aapl(code=" btcusdt "), {("code", "CONFLICT")}),
    ]
    for given, expected in cases:
        payload = (await execute(admin, CREATE, {"input": given}))["createSymbol"]
        assert payload["symbol"] is None, given
        assert {(e["field"], e["code"]) for e in payload["userErrors"]} == expected, given
    # numbers that are not numbers never reach the service: BAD_USER_INPUT, not a 500
    for text in ("NaN", "Infinity", "1e5", "1" * 400, "", "0x10"):
        body = await post(admin, CREATE, {"input": aapl(tickSize=text)})
        assert error_codes(body) == ["BAD_USER_INPUT"], (text, body)
    bad_day = session_with(windows=[window(["FUNDAY"], "09:30", "16:00")])
    body = await post(admin, CREATE, {"input": aapl(session=bad_day)})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await symbol_count(app) == count
    audit = (await execute(admin, AUDIT, {"first": 10}))["symbolAudit"]["edges"]
    assert audit == []


async def test_only_an_admin_administers_symbols(
    client: httpx.AsyncClient, anonymous_client: httpx.AsyncClient, feed_client: httpx.AsyncClient
) -> None:
    operations: list[tuple[str, dict[str, Any]]] = [
        (CREATE, {"input": aapl()}),
        (UPDATE, {"input": {"code": "BTCUSDT", "name": "x"}}),
        (HALT, {"code": "BTCUSDT"}),
        (RESUME, {"code": "BTCUSDT"}),
        (AUDIT, {"first": 5}),
    ]
    for query, variables in operations:
        assert error_codes(await post(client, query, variables)) == ["FORBIDDEN"]
        assert error_codes(await post(feed_client, query, variables)) == ["FORBIDDEN"]
        assert error_codes(await post(anonymous_client, query, variables)) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("code", ["NOPE", "x" * 5000, "٣", "%_"])
async def test_unknown_symbols_are_not_found(admin: httpx.AsyncClient, code: str) -> None:
    for query, variables, field in (
        (UPDATE, {"input": {"code": code, "name": "x"}}, "updateSymbol"),
        (HALT, {"code": code}, "haltSymbol"),
        (RESUME, {"code": code}, "resumeSymbol"),
    ):
        payload = (await execute(admin, query, variables))[field]
        assert payload["symbol"] is None
        [error] = payload["userErrors"]
        assert (error["field"], error["code"]) == ("code", "NOT_FOUND")
        assert len(error["message"]) < 100
    assert (await execute(admin, AUDIT, {"symbol": code, "first": 5}))["symbolAudit"] == {
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


def tick(symbol: str, price: str) -> Tick:
    value = Decimal(price)
    return Tick(symbol, datetime.now(UTC), value, value, value, Decimal(10))


async def wait_for_status(client: httpx.AsyncClient, order_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while (found := await order_status(client, order_id))["status"] != status:  # noqa: ASYNC110 - polls a server
            await asyncio.sleep(0.05)
    return found


async def test_a_halt_refuses_new_orders_and_leaves_resting_ones_until_resumed(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, app: Starlette
) -> None:
    services: Services = app.state.services
    await services.ingestor.ingest([tick("BTCUSDT", "95000.00")])
    # given a resting buy below the market
    resting = await place(client, limit_order("BTCUSDT", "BUY", "0.01", "94000.00"))
    assert resting["status"] == "NEW"
    # when trading is halted
    halted = (await execute(admin, HALT, {"code": "btcusdt"}))["haltSymbol"]
    assert halted["userErrors"] == []
    assert halted["symbol"]["tradable"] is False
    # then a new order is refused with SYMBOL_NOT_TRADABLE
    refused = await place(client, limit_order("BTCUSDT", "BUY", "0.01", "94500.00"))
    assert (refused["status"], refused["rejectReason"]) == ("REJECTED", "SYMBOL_NOT_TRADABLE")
    # and the resting order neither goes away nor fills on a tick that crosses it
    await services.ingestor.ingest([tick("BTCUSDT", "93900.00")])
    await asyncio.sleep(0.5)
    assert (await order_status(client, resting["id"]))["status"] == "NEW"
    # halting again changes nothing (and is not audited twice)
    assert (await execute(admin, HALT, {"code": "BTCUSDT"}))["haltSymbol"]["userErrors"] == []
    # once resumed, orders are accepted and the resting one fills on the next crossing tick
    resumed = (await execute(admin, RESUME, {"code": "BTCUSDT"}))["resumeSymbol"]
    assert resumed["symbol"]["tradable"] is True
    accepted = await place(client, limit_order("BTCUSDT", "BUY", "0.01", "94500.00"))
    assert accepted["status"] == "NEW"
    await services.ingestor.ingest([tick("BTCUSDT", "93800.00")])
    filled = await wait_for_status(client, resting["id"], "FILLED")
    # at the price of the tick after the resume: the matcher, which takes ticks in
    # order, had passed over the one during the halt
    assert filled["averageFillPrice"] == "93800.00"
    actions = [
        edge["node"]["action"]
        for edge in (await execute(admin, AUDIT, {"symbol": "BTCUSDT", "first": 10}))[
            "symbolAudit"
        ]["edges"]
    ]
    assert actions == ["RESUME", "HALT"]


async def test_a_new_tick_or_lot_size_cancels_the_resting_orders_that_no_longer_fit(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, app: Starlette
) -> None:
    services: Services = app.state.services
    await services.ingestor.ingest([tick("BTCUSDT", "95000.00")])
    fits = await place(client, limit_order("BTCUSDT", "BUY", "0.01", "94000.00"))
    off_tick = await place(client, limit_order("BTCUSDT", "BUY", "0.01", "94000.50"))
    off_lot = await place(client, limit_order("BTCUSDT", "BUY", "0.015", "94000.00"))
    # when the tick size becomes 1.00 and the lot 0.01
    changed = (
        await execute(
            admin,
            UPDATE,
            {"input": {"code": "BTCUSDT", "tickSize": "1.00", "lotSize": "0.01", "name": "BTC"}},
        )
    )["updateSymbol"]
    # then the orders off the new grids are canceled with the reason, the other rests
    assert changed["userErrors"] == []
    assert changed["canceledOrders"] == 2
    assert (changed["symbol"]["tickSize"], changed["symbol"]["lotSize"]) == ("1", "0.01")
    assert (await order_status(client, fits["id"]))["status"] == "NEW"
    assert (await order_status(client, off_tick["id"]))["rejectReason"] == "TICK_SIZE_CHANGED"
    canceled = await order_status(client, off_lot["id"])
    assert (canceled["status"], canceled["rejectReason"]) == ("CANCELED", "LOT_SIZE_CHANGED")
    # and new orders are held to the new grid at once
    payload = await execute(client, PLACE, limit_order("BTCUSDT", "BUY", "0.01", "94000.50"))
    assert [e["code"] for e in payload["placeOrder"]["userErrors"]] == ["INVALID_PRECISION"]
    # the change is audited with its before and after
    [entry] = (await execute(admin, AUDIT, {"symbol": "BTCUSDT", "first": 5}))["symbolAudit"][
        "edges"
    ]
    node = entry["node"]
    assert (node["action"], node["actorName"]) == ("UPDATE", "root")
    assert (node["before"]["tickSize"], node["after"]["tickSize"]) == ("0.01", "1")
    assert (node["before"]["lotSize"], node["after"]["lotSize"]) == ("0.00001", "0.01")
    assert node["after"]["name"] == "BTC"
    # an update that changes nothing writes nothing
    same = await execute(admin, UPDATE, {"input": {"code": "BTCUSDT", "tickSize": "1"}})
    assert same["updateSymbol"]["canceledOrders"] == 0
    assert len((await execute(admin, AUDIT, {"first": 5}))["symbolAudit"]["edges"]) == 1


async def test_the_audit_says_who_did_what_when_newest_first_in_pages(
    admin: httpx.AsyncClient, app: Starlette
) -> None:
    started = datetime.now(UTC)
    await execute(admin, CREATE, {"input": aapl()})
    later = session_with(windows=[window(ALL_DAYS, "21:00", "21:00")])
    await execute(admin, UPDATE, {"input": {"code": "AAPL", "session": later}})
    await execute(admin, HALT, {"code": "AAPL"})
    await execute(admin, HALT, {"code": "600519.SH"})
    first = (await execute(admin, AUDIT, {"symbol": "aapl", "first": 2}))["symbolAudit"]
    assert [e["node"]["action"] for e in first["edges"]] == ["HALT", "UPDATE"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (
        await execute(
            admin, AUDIT, {"symbol": "AAPL", "first": 2, "after": first["pageInfo"]["endCursor"]}
        )
    )["symbolAudit"]
    [created] = rest["edges"]
    assert rest["pageInfo"]["hasNextPage"] is False
    node = created["node"]
    services: Services = app.state.services
    async with services.sessions() as session:
        root = await session.scalar(select(models.User.id).where(models.User.username == "root"))
    assert (node["action"], node["actorId"], node["actorName"]) == ("CREATE", str(root), "root")
    assert node["before"] is None
    assert node["after"]["session"] == {**AROUND_THE_CLOCK, "offSessionOrders": "REFUSE"}
    at = datetime.fromisoformat(node["at"])
    assert at.tzinfo is not None and started - timedelta(seconds=5) <= at <= datetime.now(UTC)
    every = (await execute(admin, AUDIT, {"first": 10}))["symbolAudit"]["edges"]
    assert [(e["node"]["symbol"], e["node"]["action"]) for e in every] == [
        ("600519.SH", "HALT"),
        ("AAPL", "HALT"),
        ("AAPL", "UPDATE"),
        ("AAPL", "CREATE"),
    ]
    assert error_codes(await post(admin, AUDIT, {"first": 0})) == ["BAD_USER_INPUT"]
    assert error_codes(await post(admin, AUDIT, {"first": 5, "after": "junk"})) == [
        "BAD_USER_INPUT"
    ]


@pytest.mark.postgres
@pytest.mark.redis
async def test_every_process_sees_a_change_at_once_over_redis(
    postgres_url: str, postgres_template: str, redis_url: str
) -> None:
    """Two server processes (two apps) on one PostgreSQL and one Redis: what an admin
    changes on A is what B's catalogue holds, without waiting for a miss or a restart."""
    async with postgres_database(postgres_url, postgres_template) as url:
        settings = make_settings(url, BROADCAST_URL=redis_url)
        async with running_app(settings) as a, running_app(settings) as b:
            b_services: Services = b.state.services
            async with (
                http_client(a, await user_token(a, "root", Role.ADMIN)) as admin,
                http_client(b, await login_token(b)) as trader_on_b,
            ):
                # a new symbol reaches B's catalogue (not just its database)
                await execute(admin, CREATE, {"input": aapl()})
                await until(lambda: b_services.catalog.cached("AAPL") is not None)
                # a halt on A refuses orders placed on B
                await execute(admin, HALT, {"code": "BTCUSDT"})
                await until(lambda: not spec_on(b_services, "BTCUSDT").tradable)
                await b_services.ingestor.ingest([tick("BTCUSDT", "95000.00")])
                refused = await place(trader_on_b, limit_order("BTCUSDT", "BUY", "0.01", "95000"))
                assert refused["rejectReason"] == "SYMBOL_NOT_TRADABLE"
                # a new tick size on A holds B's orders to the new grid
                await execute(admin, RESUME, {"code": "BTCUSDT"})
                await execute(admin, UPDATE, {"input": {"code": "BTCUSDT", "tickSize": "0.5"}})
                await until(lambda: spec_on(b_services, "BTCUSDT").tick_size == Decimal("0.5"))
                payload = await execute(
                    trader_on_b, PLACE, limit_order("BTCUSDT", "BUY", "0.01", "94000.25")
                )
                assert [e["code"] for e in payload["placeOrder"]["userErrors"]] == [
                    "INVALID_PRECISION"
                ]
                accepted = await place(
                    trader_on_b, limit_order("BTCUSDT", "BUY", "0.01", "94000.5")
                )
                assert accepted["status"] == "NEW"


def spec_on(services: Services, code: str) -> SymbolSpec:
    spec = services.catalog.cached(code)
    assert spec is not None
    return spec


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - waits on another component's state
            await asyncio.sleep(0.02)


SESSION_AT = """
query ($code: String!, $at: DateTime!, $sunday: DateTime!) {
  symbol(code: $code) {
    session {
      timezone
      offSessionOrders
      windows { days open close }
      openAt: isOpen(at: $at)
      openSunday: isOpen(at: $sunday)
      nextOpen(after: $sunday)
      nextClose(after: $at)
      dayClose(after: $sunday)
      isOpen
    }
  }
}
"""
NASDAQ = {
    "timezone": "America/New_York",
    "windows": [window(ALL_DAYS[:5], "09:30", "16:00")],
    "offSessionOrders": "REST",
}


async def test_a_symbol_answers_when_its_session_opens_and_closes(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    # given AAPL listed with the NASDAQ's hours (New York time)
    created = (await execute(admin, CREATE, {"input": aapl(session=NASDAQ)}))["createSymbol"]
    assert created["userErrors"] == []
    # when asked about fixed instants around the spring clock change of 2026
    variables = {
        "code": "AAPL",
        "at": "2026-03-06T14:30:00Z",  # Friday 09:30 EST: the open
        "sunday": "2026-03-08T12:00:00Z",  # the Sunday the clocks go forward
    }
    session = (await execute(client, SESSION_AT, variables))["symbol"]["session"]
    # then the answers follow New York's clock, as UTC instants
    assert isinstance(session.pop("isOpen"), bool)  # now: whatever the hour
    assert session == {
        "timezone": "America/New_York",
        "offSessionOrders": "REST",
        "windows": [{"days": ALL_DAYS[:5], "open": "09:30", "close": "16:00"}],
        "openAt": True,
        "openSunday": False,
        "nextOpen": "2026-03-09T13:30:00+00:00",  # Monday 09:30 EDT
        "nextClose": "2026-03-06T21:00:00+00:00",  # Friday 16:00 EST
        "dayClose": "2026-03-09T20:00:00+00:00",  # Monday 16:00 EDT
    }
    # the demo's crypto trades around the clock: it never opens or closes
    crypto = await execute(client, SESSION_AT, {**variables, "code": "BTCUSDT"})
    assert crypto["symbol"]["session"]["isOpen"] is True
    assert crypto["symbol"]["session"]["nextOpen"] is None
    assert crypto["symbol"]["session"]["dayClose"] == "2026-03-09T00:00:00+00:00"
    # an instant without a UTC offset is the client's mistake, not a server error
    body = await post(client, SESSION_AT, {**variables, "at": "2026-03-06T14:30:00"})
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_an_order_on_a_closed_market_is_refused_or_rests_as_the_symbol_says(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, app: Starlette
) -> None:
    # given a symbol whose only window opens two hours from now: closed at any hour
    opens = datetime.now(UTC) + timedelta(hours=2)
    hours = window(
        [ALL_DAYS[opens.weekday()]], f"{opens:%H:%M}", f"{opens + timedelta(hours=1):%H:%M}"
    )
    closed = {"timezone": "UTC", "windows": [hours], "offSessionOrders": "REFUSE"}
    created = (await execute(admin, CREATE, {"input": aapl(session=closed)}))["createSymbol"]
    assert created["userErrors"] == []
    services: Services = app.state.services
    await services.ingestor.ingest([tick("AAPL", "180.00")])
    # when an order is placed, then it is refused with MARKET_CLOSED
    refused = await place(client, limit_order("AAPL", "BUY", "1", "180.00"))
    assert (refused["status"], refused["rejectReason"]) == ("REJECTED", "MARKET_CLOSED")
    # and once the symbol lets off-session orders rest, the same order is accepted
    resting = {**closed, "offSessionOrders": "REST"}
    update = {"input": {"code": "AAPL", "session": resting}}
    updated = (await execute(admin, UPDATE, update))["updateSymbol"]
    assert updated["symbol"]["session"]["offSessionOrders"] == "REST"
    accepted = await place(client, limit_order("AAPL", "BUY", "1", "180.00"))
    assert (accepted["status"], accepted["rejectReason"]) == ("NEW", None)
    # and a crossing tick while the market is closed does not fill it
    await services.ingestor.ingest([tick("AAPL", "179.00")])
    await asyncio.sleep(0.5)
    assert (await order_status(client, accepted["id"]))["status"] == "NEW"
