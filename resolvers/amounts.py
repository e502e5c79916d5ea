"""Amounts at their natural scale: the one place the API decides how many decimals to show.

Stored amounts carry whatever exponent their arithmetic left (an average
fill price with ten decimals, a reservation with six, ``1520.0`` from a
float-born daily close). Responses show each amount at the scale of what it
measures instead: a price at the symbol's tick size (``1520.50``), a quantity
at its lot size (``0.0100`` BTC, ``100`` shares), cash at the currency's
minor unit (``1000000.00`` CNY). Only zeros move: a value with more
significant digits than its natural scale keeps them all (a volume-weighted
price ``1520.123456`` stays as it is), so no amount is ever rounded here.
Without a known scale (a symbol the catalogue has not loaded) the trailing
zeros are stripped.
"""

from __future__ import annotations

from decimal import Context, Decimal

from graphql_api.market.symbols import SymbolCatalog
from graphql_api.trading.accounts import currency_unit
from resolvers.context import Info

# Wide enough that normalising or re-scaling any stored amount is exact.
_EXACT = Context(prec=200)
_ONE = Decimal(1)


def at_scale(value: Decimal, step: Decimal | None) -> Decimal:
    """``value`` written with the decimals of ``step``, or more when it needs them."""
    if not value.is_finite():
        return value
    stripped = value.normalize(_EXACT)
    wanted = min(int(step.normalize(_EXACT).as_tuple().exponent), 0) if step is not None else 0
    exponent = int(stripped.as_tuple().exponent)
    if exponent < wanted:
        return stripped  # more significant decimals than the natural scale: keep them all
    return value.quantize(_ONE.scaleb(wanted), context=_EXACT)


def places_of(step: Decimal | None) -> int:
    """The decimals :func:`at_scale` pads to for ``step`` (0 without one)."""
    if step is None:
        return 0
    return -min(int(step.normalize(_EXACT).as_tuple().exponent), 0)


def text_at_scale(value: Decimal, places: int) -> str:
    """``format(at_scale(value, step), "f")`` for a step of ``places`` decimals, on the
    text: what a response writes, without two Decimal operations per value (a
    10,000-bar answer has 50,000 of them)."""
    if not value.is_finite():
        return format(value, "f")
    text = format(value, "f")
    point = text.find(".")
    have = 0
    if point >= 0:
        text = text.rstrip("0")
        have = len(text) - point - 1
        if have == 0:
            text = text[:point]
    if have >= places:
        return text  # at its scale, or more significant decimals: kept all
    return text + ("." if have == 0 else "") + "0" * (places - have)


class Amounts:
    """Scales by symbol (price, quantity, cash in its quote currency) and by currency."""

    def __init__(self, catalog: SymbolCatalog) -> None:
        self._catalog = catalog

    def price(self, value: Decimal, symbol: str) -> Decimal:
        spec = self._catalog.cached(symbol)
        return at_scale(value, spec.tick_size if spec else None)

    def quantity(self, value: Decimal, symbol: str) -> Decimal:
        spec = self._catalog.cached(symbol)
        return at_scale(value, spec.lot_size if spec else None)

    def price_places(self, symbol: str) -> int:
        spec = self._catalog.cached(symbol)
        return places_of(spec.tick_size if spec else None)

    def quantity_places(self, symbol: str) -> int:
        spec = self._catalog.cached(symbol)
        return places_of(spec.lot_size if spec else None)

    def cash(self, value: Decimal, currency: str) -> Decimal:
        return at_scale(value, currency_unit(currency))

    def quote_cash(self, value: Decimal, symbol: str) -> Decimal:
        """Cash in the quote currency of ``symbol`` (P&L, commission, cost basis)."""
        spec = self._catalog.cached(symbol)
        return at_scale(value, currency_unit(spec.currency) if spec else None)


def amounts(info: Info) -> Amounts:
    return Amounts(info.context.services.catalog)
