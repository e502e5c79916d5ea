"""Our scalars: ``Decimal`` for money and quantities, ``DateTime`` for moments.

Strawberry's built-in ``Decimal`` serialises with ``str()``, which can print
``1.00E+6``, and accepts JSON numbers (already rounded through a float by the
client's JSON encoder) and whatever ``Decimal()`` reads (exponents, NaN,
full-width digits). Ours always writes positional notation and reads only
strings like ``"-12.50"`` through :func:`graphql_api.platform.number_text.parse_plain_decimal`
(ASCII digits, bounded size), so a price never changes on its way in or out.

Strawberry's ``DateTime`` reads ISO 8601 but keeps the client's offset, so a
moment near the ends of the calendar (``0001-01-01T00:00:00+14:00``) overflows
the first time code converts it to UTC. Ours converts at the door:
an aware value arrives in UTC, and one with no UTC equivalent in
0001-01-01..9999-12-31 is refused as BAD_USER_INPUT. Naive values stay naive;
each field says how it reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import strawberry
from graphql import GraphQLError

from graphql_api.platform.number_text import NumberTextError, parse_plain_decimal


def serialize_decimal(value: Decimal) -> str:
    return format(value, "f")


def parse_decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise GraphQLError(f'Decimal must be a string such as "12.50", got {type(value).__name__}')
    try:
        return parse_plain_decimal(value)
    except NumberTextError as error:
        raise GraphQLError(str(error)) from None


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description='Exact decimal number as a string, e.g. "1520.50" (never a float).',
    serialize=serialize_decimal,
    parse_value=parse_decimal,
)


def serialize_datetime(value: datetime) -> str:
    return value.isoformat()


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise GraphQLError(f"DateTime must be an ISO 8601 string, got {type(value).__name__}")
    try:
        if not value.isascii():  # fromisoformat is ASCII-only today; say so here
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise GraphQLError(
            f"{value!r} is not an ISO 8601 date and time such as 2026-03-02T01:30:00Z"
        ) from None
    if moment.utcoffset() is None:
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise GraphQLError(
            f"{value!r} is outside the supported range "
            "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
        ) from None


DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="Date with time (isoformat)",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)
