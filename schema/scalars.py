"""The ``Decimal`` scalar: money and quantities as plain decimal strings.

Strawberry's built-in serialises with ``str()``, which can print ``1.00E+6``,
and accepts JSON numbers (already rounded through a float by the client's
JSON encoder). Ours always writes positional notation and accepts only strings
like ``"-12.50"`` — no exponents, NaN or Infinity — so a price never changes
on its way in or out.
"""

from __future__ import annotations

import re
from decimal import Decimal

import strawberry
from graphql import GraphQLError

_PLAIN_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
MAX_DIGITS = 40


def serialize_decimal(value: Decimal) -> str:
    return format(value, "f")


def parse_decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise GraphQLError(f'Decimal must be a string such as "12.50", got {type(value).__name__}')
    text = value.strip()
    if len(text) > MAX_DIGITS or not _PLAIN_DECIMAL.match(text):
        raise GraphQLError(f'"{value}" is not a plain decimal number such as "12.50"')
    return Decimal(text)


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description='Exact decimal number as a string, e.g. "1520.50" (never a float).',
    serialize=serialize_decimal,
    parse_value=parse_decimal,
)
