"""The symbol catalogue on the seeded database; exact grid arithmetic on tick and lot sizes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import update

from graphql_api.market.sessions import (
    ALWAYS_OPEN_UTC,
    OffSessionOrders,
    TradingSession,
    parse_hours,
)
from graphql_api.market.symbols import SymbolCatalog, SymbolSpec, is_multiple_of, quantize
from graphql_api.server.demo_data import A_SHARE_DEMO_SESSION, INSTRUMENTS
from storage import models
from tests.graphql_api.conftest import Embedded

D = Decimal
REFUSE = OffSessionOrders.REFUSE
MOUTAI = SymbolSpec(
    "600519.SH",
    "SSE",
    "CNY",
    D("0.01"),
    D("100"),
    True,
    A_SHARE_DEMO_SESSION,
    OffSessionOrders.REFUSE,
)
BITCOIN = SymbolSpec(
    "BTCUSDT",
    "BINANCE",
    "USDT",
    D("0.01"),
    D("0.00001"),
    True,
    ALWAYS_OPEN_UTC,
    OffSessionOrders.REFUSE,
)


async def test_loading_reads_every_symbol_with_its_metadata(embedded: Embedded) -> None:
    catalog = SymbolCatalog(embedded.sessions)
    assert catalog.cached("600519.SH") is None  # nothing before the load
    await catalog.load()
    assert sorted(spec.code for spec in catalog.all()) == sorted(i.code for i in INSTRUMENTS)
    assert catalog.cached("600519.SH") == MOUTAI
    assert catalog.cached("BTCUSDT") == BITCOIN


async def test_lookups_return_the_known_codes_and_leave_out_the_unknown(
    embedded: Embedded,
) -> None:
    found = await embedded.catalog.get_many(["BTCUSDT", "NOPE", "600519.SH"])
    assert found == {"BTCUSDT": BITCOIN, "600519.SH": MOUTAI}
    assert await embedded.catalog.currency_of("BTCUSDT") == "USDT"
    with pytest.raises(KeyError):
        await embedded.catalog.currency_of("NOPE")


async def test_codes_are_matched_exactly_as_the_catalogue_spells_them(embedded: Embedded) -> None:
    # No case folding or trimming: "600519.sh" is another (unknown) code.
    assert await embedded.catalog.get_many(["600519.sh", " 600519.SH", "600519"]) == {}


async def test_a_symbol_listed_after_the_load_is_found_on_its_first_lookup(
    embedded: Embedded,
) -> None:
    async with embedded.sessions() as session:
        session.add(
            models.Symbol(
                code="688981.SH",
                name="SMIC",
                exchange="SSE",
                currency="CNY",
                tick_size=D("0.01"),
                lot_size=D("200"),
                tradable=False,
                trading_session=A_SHARE_DEMO_SESSION.to_json(),
                off_session_orders="REST",
            )
        )
        await session.commit()
    assert embedded.catalog.cached("688981.SH") is None
    found = await embedded.catalog.get_many(["688981.SH"])
    spec = SymbolSpec(
        "688981.SH",
        "SSE",
        "CNY",
        D("0.01"),
        D("200"),
        False,
        A_SHARE_DEMO_SESSION,
        OffSessionOrders.REST,
    )
    assert found == {"688981.SH": spec}
    assert embedded.catalog.cached("688981.SH") == spec  # kept for the next tick


async def test_a_cached_symbol_is_served_from_memory(embedded: Embedded) -> None:
    # Tick validation runs on every tick: a cached spec costs no query, so a
    # change in the table is not seen until the next load.
    async with embedded.sessions() as session:
        await session.execute(
            update(models.Symbol).where(models.Symbol.code == "600519.SH").values(tradable=False)
        )
        await session.commit()
    assert (await embedded.catalog.get_many(["600519.SH"]))["600519.SH"].tradable is True
    await embedded.catalog.load()
    assert (await embedded.catalog.get_many(["600519.SH"]))["600519.SH"].tradable is False


def test_a_spec_is_read_from_its_row() -> None:
    row = models.Symbol(
        code="ETHUSDT",
        name="Ether / Tether",
        exchange="BINANCE",
        currency="USDT",
        tick_size=D("0.01"),
        lot_size=D("0.0001"),
        tradable=True,
        trading_session=ALWAYS_OPEN_UTC.to_json(),
        off_session_orders="REFUSE",
    )
    assert SymbolSpec.from_row(row) == SymbolSpec(
        "ETHUSDT", "BINANCE", "USDT", D("0.01"), D("0.0001"), True, ALWAYS_OPEN_UTC, REFUSE
    )


@pytest.mark.parametrize(
    ("value", "step", "on_grid"),
    [
        ("1500.01", "0.01", True),
        ("1500.010000", "0.01", True),  # trailing zeros are the same number
        ("1500.005", "0.01", False),
        ("300", "100", True),
        ("1E+3", "100", True),
        ("150", "100", False),
        ("0.00003", "0.00001", True),
        ("0.000015", "0.00001", False),
        ("0.3", "0.1", True),  # exact decimals: no binary-float surprise
        ("1", "0", False),  # a step of zero or less is no grid
        ("1", "-1", False),
        ("NaN", "0.01", False),
        ("Infinity", "0.01", False),
        ("1e999999", "0.01", False),  # too big to divide exactly: off-grid, not a crash
    ],
)
def test_is_multiple_of(value: str, step: str, on_grid: bool) -> None:
    assert is_multiple_of(D(value), D(step)) is on_grid


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        ("1500.004", "0.01", "1500.00"),
        ("1500.005", "0.01", "1500.01"),  # halves go up
        ("149", "100", "100"),
        ("150", "100", "200"),
        ("0.001", "0.01", "0.01"),  # never below one step
        ("0", "100", "100"),
        ("0.0000149", "0.00001", "0.00001"),
    ],
)
def test_quantize_rounds_to_the_nearest_step_half_up(value: str, step: str, expected: str) -> None:
    result = quantize(D(value), D(step))
    assert result == D(expected)
    assert is_multiple_of(result, D(step))


async def test_replayed_symbols_trade_around_the_clock_on_the_catalogue_that_says_so(
    embedded: Embedded,
) -> None:
    # given 600519.SH stored with its real hours, closed on a Saturday
    saturday = datetime(2026, 11, 7, 4, 0, tzinfo=UTC)
    hours = TradingSession.create("Asia/Shanghai", parse_hours("MON-FRI 09:30-11:30 13:00-15:00"))
    async with embedded.sessions() as session:
        await session.execute(
            update(models.Symbol)
            .where(models.Symbol.code == "600519.SH")
            .values(trading_session=hours.to_json())
        )
        await session.commit()
    catalog = SymbolCatalog(embedded.sessions)
    await catalog.load()
    stored = catalog.cached("600519.SH")
    assert stored is not None and not stored.session.is_open(saturday)
    # when the replay's symbols are to trade at any hour
    catalog.trade_around_the_clock(["600519.SH"])
    # then the catalogue answers them open, everything else as stored, also after a reload
    assert catalog.cached("600519.SH") == replace(stored, session=ALWAYS_OPEN_UTC)
    (reloaded,) = await catalog.refresh(["600519.SH"])
    assert reloaded.session.is_open(saturday)
    await catalog.load()
    assert (await catalog.get_many(["600519.SH"]))["600519.SH"].session == ALWAYS_OPEN_UTC
    assert catalog.cached("BTCUSDT") == BITCOIN
    # and another catalogue (a process that does not replay) keeps the real hours
    other = SymbolCatalog(embedded.sessions)
    await other.load()
    assert other.cached("600519.SH") == stored
