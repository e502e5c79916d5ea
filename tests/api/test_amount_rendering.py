"""Amounts are written at their natural scale, never rounded (SQLite and PostgreSQL).

A price shows the symbol's tick decimals, a quantity its lot decimals, cash
its currency's minor unit, whatever exponent the stored value carries; a
value with more significant decimals keeps them all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Context, Decimal

import httpx
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from starlette.applications import Starlette

from graphql_api.services import Services
from resolvers.amounts import at_scale, places_of, text_at_scale
from schema.scalars import serialize_decimal
from storage import models
from storage.decimal_text import plain_text_at_scale
from tests.support.graphql import execute


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


async def test_amounts_render_at_their_natural_scale(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    # given rows whose stored exponents differ from the natural scales (600519.SH:
    # tick 0.01, lot 100, CNY; BTCUSDT: tick 0.01, lot 0.00001, USDT)
    services = services_of(app)
    now = datetime.now(UTC)
    async with services.sessions() as session, session.begin():
        user = await session.scalar(select(models.User).where(models.User.username == "demo"))
        assert user is not None
        common = {"user_id": user.id, "side": "BUY", "time_in_force": "GTC", "created_at": now}
        session.add_all(
            [
                models.Order(
                    **common,
                    symbol_code="600519.SH",
                    type="MARKET",
                    quantity=Decimal("100.000"),
                    status="FILLED",
                    filled_quantity=Decimal("1E+2"),
                    average_fill_price=Decimal("1520.5000000000"),
                    updated_at=now,
                ),
                models.Order(
                    **common,
                    symbol_code="BTCUSDT",
                    type="LIMIT",
                    limit_price=Decimal("95000.1"),
                    quantity=Decimal("0.01"),
                    status="FILLED",
                    filled_quantity=Decimal("0.010000"),
                    average_fill_price=Decimal("95000.123456"),  # finer than the tick: kept
                    updated_at=now,
                ),
            ]
        )
        session.add(
            models.DailyBar(
                symbol_code="600519.SH",
                day=date(2999, 1, 1),
                open=Decimal("1520"),
                high=Decimal("1530.5"),
                low=Decimal("1510.000"),
                close=Decimal("1520.0"),
                volume=Decimal("12300.00"),
            )
        )

    # when they are read
    data = await execute(
        client,
        """{
          orders(first: 5) { edges { node {
            symbol { code } quantity filledQuantity limitPrice averageFillPrice } } }
          klines(symbol: "600519.SH", interval: DAY_1, limit: 1) { open high low close volume }
          klineSeries(symbol: "600519.SH", interval: DAY_1, limit: 1) { closes volumes }
          me { account { balances { currency cash reserved buyingPower } } }
        }""",
    )

    # then each shows its natural scale, and no digit of a finer value is lost
    orders = {edge["node"]["symbol"]["code"]: edge["node"] for edge in data["orders"]["edges"]}
    assert orders["600519.SH"] == {
        "symbol": {"code": "600519.SH"},
        "quantity": "100",
        "filledQuantity": "100",
        "limitPrice": None,
        "averageFillPrice": "1520.50",
    }
    assert orders["BTCUSDT"] == {
        "symbol": {"code": "BTCUSDT"},
        "quantity": "0.01000",
        "filledQuantity": "0.01000",
        "limitPrice": "95000.10",
        "averageFillPrice": "95000.123456",
    }
    assert data["klines"] == [
        {
            "open": "1520.00",
            "high": "1530.50",
            "low": "1510.00",
            "close": "1520.00",
            "volume": "12300",
        }
    ]
    assert data["klineSeries"] == {"closes": ["1520.00"], "volumes": ["12300"]}
    balances = {b["currency"]: b for b in data["me"]["account"]["balances"]}
    assert balances["CNY"] == {
        "currency": "CNY",
        "cash": "1000000.00",
        "reserved": "0.00",
        "buyingPower": "1000000.00",
    }
    assert balances["USDT"]["cash"] == "1000000.00000000"


async def test_reservations_render_at_the_currency_scale(client: httpx.AsyncClient) -> None:
    # given an open LIMIT buy, whose reservation includes a commission with six decimals
    placed = await execute(
        client,
        """mutation { placeOrder(input: {symbol: "600519.SH", side: BUY, type: LIMIT,
             quantity: "100", limitPrice: "1500.00"}) { userErrors { code } } }""",
    )
    assert placed["placeOrder"]["userErrors"] == []
    data = await execute(client, "{ me { account { balances { currency reserved } } } }")
    reserved = {b["currency"]: b["reserved"] for b in data["me"]["account"]["balances"]}
    # 100 x 1500.00 plus 0.03% commission: 150045.00, two decimals like any CNY amount
    assert reserved["CNY"] == "150045.00"


steps = st.sampled_from([Decimal(s) for s in ("0.01", "0.0001", "1", "100", "0.00000001", "0.5")])
amounts = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20)


@given(value=amounts, step=steps)
def test_scaling_only_moves_zeros(value: Decimal, step: Decimal) -> None:
    scaled = at_scale(value, step)
    # the same number, never rounded
    assert scaled == value
    # with at least the step's decimals, and more only when the value has them
    decimals = -int(scaled.as_tuple().exponent)
    natural = max(-int(step.normalize().as_tuple().exponent), 0)
    exact = Context(prec=100)
    significant = max(-int(value.normalize(exact).as_tuple().exponent), 0) if value else 0
    assert decimals == max(natural, significant)


def _at_scale_by_decimal_operations(value: Decimal, step: Decimal | None) -> Decimal:
    """The first ``at_scale``: strip the trailing zeros, then quantize to the step's
    decimals unless the value has more. The text-based one must equal it exactly."""
    if not value.is_finite():
        return value
    exact = Context(prec=200)
    stripped = value.normalize(exact)
    wanted = min(int(step.normalize(exact).as_tuple().exponent), 0) if step is not None else 0
    if int(stripped.as_tuple().exponent) < wanted:
        return stripped
    return value.quantize(Decimal(1).scaleb(wanted), context=exact)


@given(
    value=amounts
    | st.decimals(allow_nan=True, allow_infinity=True, places=12)
    | st.sampled_from([Decimal(s) for s in ("-0.000", "0E-8", "1E+3", "5E+2", "-7", "-0")]),
    step=steps | st.none(),
)
def test_at_scale_is_the_decimal_operations_result_exactly(
    value: Decimal, step: Decimal | None
) -> None:
    # same value, sign, digits and exponent; and the klines rows write the same text
    expected = _at_scale_by_decimal_operations(value, step)
    scaled = at_scale(value, step)
    if value.is_nan():
        assert scaled.is_nan()
    else:
        assert scaled.as_tuple() == expected.as_tuple()
    assert text_at_scale(value, places_of(step)) == serialize_decimal(expected)


@given(
    value=amounts | st.decimals(allow_nan=True, allow_infinity=True, places=12),
    zeros=st.integers(min_value=0, max_value=6),
    places=st.integers(min_value=0, max_value=10),
)
def test_any_plain_text_of_a_value_goes_to_the_same_text_at_scale(
    value: Decimal, zeros: int, places: int
) -> None:
    # a database writes a numeric with the zeros of its own scale: they must not matter
    plain = format(value, "f")
    if value.is_finite() and zeros:
        plain += ("" if "." in plain else ".") + "0" * zeros
    assert plain_text_at_scale(plain, places) == text_at_scale(value, places)
