"""Extreme times and decimals into ingestTicks and importBars (hypothesis), SQLite and PostgreSQL.

Whatever comes in, the answer is a clean typed refusal, or the value is stored
and reads back exactly; never an INTERNAL_SERVER_ERROR, and reads keep working.
One app serves every example: it runs on its own event loop in a thread, since
hypothesis drives a synchronous test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphql_api.auth import Role
from graphql_api.market.value_ranges import DECIMAL_FRACTION_DIGITS, DECIMAL_INTEGER_DIGITS
from graphql_api.platform.number_text import MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS
from storage.types import decimal_digits
from tests.conftest import http_client, make_settings, running_app, sql_database, user_token
from tests.support.graphql import error_codes, post

T = TypeVar("T")

SYMBOL = "BTCUSDT"  # tick size 0.01
BAR_SYMBOL = "600036.SH"
TYPED_REFUSALS = {"OUT_OF_RANGE", "INVALID_PRECISION", "INVALID"}

MUTATION_INGEST = """
mutation ($ticks: [TickInput!]!) {
  ingestTicks(ticks: $ticks) { accepted userErrors { field code message } }
}
"""
QUERY_TICKS = """
query ($from: DateTime!, $to: DateTime!) {
  quote(symbol: "BTCUSDT") { last }
  ticks(symbol: "BTCUSDT", from: $from, to: $to, limit: 1000) { last volume time }
  symbols(first: 30) { edges { node { quote { last } } } }
}
"""
MUTATION_IMPORT_BARS = """
mutation ($symbol: String!, $csv: String!) {
  importBars(symbol: $symbol, csv: $csv) { rowsWritten userErrors { field code message } }
}
"""
QUERY_DAILY = """
query ($from: DateTime!, $to: DateTime!) {
  klines(symbol: "600036.SH", interval: DAY_1, from: $from, to: $to) { open close volume }
}
"""


class AppThread:
    """A running app and a FEED client on an event loop of their own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._stack = contextlib.AsyncExitStack()
        self.client: httpx.AsyncClient

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    async def start(self, request: pytest.FixtureRequest, kind: str) -> None:
        url = await self._stack.enter_async_context(sql_database(request, kind))
        app = await self._stack.enter_async_context(running_app(make_settings(url)))
        token = await user_token(app, "feeder", Role.FEED)
        self.client = await self._stack.enter_async_context(http_client(app, token))

    def close(self) -> None:
        self.run(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app_thread(request: pytest.FixtureRequest) -> Iterator[AppThread]:
    # Session fixtures are resolved here, in the test's thread, before the app's loop uses them.
    request.getfixturevalue("sqlite_template")
    if request.param == "postgresql":
        request.getfixturevalue("postgres_template")
    running = AppThread()
    try:
        running.run(running.start(request, request.param))
        yield running
    finally:
        running.close()


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
extreme_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
)
recent_times = st.datetimes(min_value=datetime(1997, 1, 1), max_value=datetime(2025, 12, 31))
times = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone),
    st.one_of(extreme_times, recent_times),
    offsets,
)


@st.composite
def plain_decimals(draw: st.DrawFn) -> str:
    """Decimal text the scalar accepts (at most 40 characters), small to absurd."""
    integer = draw(st.integers(min_value=0, max_value=10**30))
    magnitude = draw(st.integers(min_value=0, max_value=9))
    whole = str(integer * 10**magnitude)
    places = draw(st.integers(min_value=0, max_value=14))
    fraction = "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=places, max_size=places))
    )
    value = whole + ("." + fraction if fraction else "")
    return value[:40].rstrip(".")


grid_prices = st.integers(min_value=1, max_value=10**12).map(
    lambda cents: str(Decimal(cents) / 100)
)
prices = st.one_of(grid_prices, plain_decimals())


def scalars_refuse(time: datetime, *numbers: str) -> bool:
    """What the DateTime and Decimal scalars refuse: a moment with no UTC
    equivalent in years 1-9999, a number with more digits than any amount has."""
    try:
        time.astimezone(UTC)
    except OverflowError:
        return True
    for number in numbers:
        integer, _, fraction = number.partition(".")
        if len(integer.lstrip("0")) > MAX_INTEGER_DIGITS:
            return True
        if len(fraction.rstrip("0")) > MAX_FRACTION_DIGITS:
            return True
    return False


def fits(value: str) -> bool:
    integer, fraction = decimal_digits(Decimal(value))
    return integer <= DECIMAL_INTEGER_DIGITS and fraction <= DECIMAL_FRACTION_DIGITS


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(time=times, last=prices, volume=plain_decimals())
def test_ingest_ticks_refuses_cleanly_or_stores_exactly(
    app_thread: AppThread, time: datetime, last: str, volume: str
) -> None:
    app_thread.run(_ingest_one(app_thread.client, time, last, volume))


async def _ingest_one(client: httpx.AsyncClient, time: datetime, last: str, volume: str) -> None:
    tick = {"symbol": SYMBOL, "time": time.isoformat(), "last": last, "volume": volume}
    body = await post(client, MUTATION_INGEST, {"ticks": [tick]})
    if "errors" in body:
        # only what the scalars cannot read is refused as input, before the rules
        assert set(error_codes(body)) == {"BAD_USER_INPUT"}, body
        assert scalars_refuse(time, last, volume), body
        return
    payload = body["data"]["ingestTicks"]
    now = datetime.now(UTC)
    if payload["accepted"] == 0:
        assert {error["code"] for error in payload["userErrors"]} <= TYPED_REFUSALS, payload
    else:
        # only what the rules allow is stored, and it reads back exactly
        assert now - timedelta(days=31 * 366) < time <= now + timedelta(seconds=5)
        assert fits(last) and fits(volume)
        utc = time.astimezone(UTC)
        span = {"from": utc.isoformat(), "to": (utc + timedelta(microseconds=1)).isoformat()}
        read = await post(client, QUERY_TICKS, span)
        assert "errors" not in read, read["errors"]
        stored = [(Decimal(t["last"]), Decimal(t["volume"])) for t in read["data"]["ticks"]]
        assert (Decimal(last), Decimal(volume)) in stored
    later = now + timedelta(seconds=1)
    reads = await post(client, QUERY_TICKS, {"from": now.isoformat(), "to": later.isoformat()})
    assert "errors" not in reads, reads["errors"]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    day=st.one_of(st.dates(), st.dates(min_value=date(1930, 1, 1), max_value=date(2025, 12, 31))),
    price=prices,
    volume=plain_decimals(),
)
def test_import_bars_refuses_cleanly_or_stores_exactly(
    app_thread: AppThread, day: date, price: str, volume: str
) -> None:
    app_thread.run(_import_one(app_thread.client, day, price, volume))


async def _import_one(client: httpx.AsyncClient, day: date, price: str, volume: str) -> None:
    row = ",".join([day.isoformat(), price, price, price, price, volume])
    csv = f"date,open,high,low,close,volume\n{row}\n"
    body = await post(client, MUTATION_IMPORT_BARS, {"symbol": BAR_SYMBOL, "csv": csv})
    assert "errors" not in body, body["errors"]
    payload = body["data"]["importBars"]
    if payload["rowsWritten"] == 0:
        assert payload["userErrors"], payload
        assert {error["code"] for error in payload["userErrors"]} <= TYPED_REFUSALS, payload
        return
    assert date(1925, 1, 1) <= day <= datetime.now(UTC).date()
    assert fits(price) and fits(volume)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    span = {"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()}
    read = await post(client, QUERY_DAILY, span)
    assert "errors" not in read, read["errors"]
    bars = read["data"]["klines"]
    assert [(Decimal(b["close"]), Decimal(b["volume"])) for b in bars] == [
        (Decimal(price), Decimal(volume))
    ]
