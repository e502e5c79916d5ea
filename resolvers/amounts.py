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

import functools
from decimal import Context, Decimal

from graphql_api.market.symbols import SymbolCatalog
from graphql_api.trading.accounts import currency_unit
from resolvers.context import Info
from storage.decimal_text import plain_text_at_scale

# Wide enough that normalising or re-scaling any stored amount is exact.
_EXACT = Context(prec=200)


def at_scale(value: Decimal, step: Decimal | None) -> Decimal:
    """``value`` written with the decimals of ``step``, or more when it needs them.

    Built from :func:`text_at_scale`'s text: the same value, sign and exponent as
    stripping then quantizing would give (a property test holds the two equal),
    at half the cost, which matters for a 10,000-bar series (50,000 amounts).
    """
    if not value.is_finite():
        return value
    return Decimal(text_at_scale(value, places_of(step)))


@functools.lru_cache(maxsize=1024)
def places_of(step: Decimal | None) -> int:
    """The decimals a value is padded to for ``step`` (0 without one)."""
    if step is None:
        return 0
    return -min(int(step.normalize(_EXACT).as_tuple().exponent), 0)


def text_at_scale(value: Decimal, places: int) -> str:
    """``format(at_scale(value, step), "f")`` for a step of ``places`` decimals, on the
    text: trailing zeros stripped, then padded to ``places`` unless the value has more
    significant decimals (kept all: no amount is ever rounded here)."""
    return plain_text_at_scale(format(value, "f"), places)


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
