"""Column types that keep money exact and time aware on every database.

PostgreSQL stores ``NUMERIC`` and ``timestamptz`` natively. SQLite has neither:
its NUMERIC affinity silently turns ``0.1`` into a binary float, and its
datetimes lose their zone. So on SQLite, decimals travel as canonical text and
datetimes as fixed-width ISO text in UTC: the year always has four digits, so
text order is time order for every year from 1 to 9999.

``ExactDecimal`` declares no precision (``NUMERIC`` on PostgreSQL, 40 characters
of text on SQLite), but what the stores keep *and* compute on exactly is bounded
by Python's default decimal context, 28 significant digits. Market data taken
from outside is held to :data:`DECIMAL_INTEGER_DIGITS` and
:data:`DECIMAL_FRACTION_DIGITS` (28 together) so that nothing is ever rounded on
its way in, out or into a sum; see :func:`decimal_digits`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

DECIMAL_INTEGER_DIGITS = 18
DECIMAL_FRACTION_DIGITS = 10
# The canonical SQLite text of a UtcDateTime, e.g. 0999-01-01T00:00:00.000000Z.
SQLITE_TIME_LENGTH = 27
SQLITE_TIME_GLOB = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
    ".[0-9][0-9][0-9][0-9][0-9][0-9]Z"
)


def decimal_digits(value: Decimal) -> tuple[int, int]:
    """Digits before and after the point a finite ``value`` needs, trailing zeros aside.

    Reads the digit tuple instead of calling ``normalize``/``quantize``: those
    work in the context's precision and would round the very values this is
    meant to catch.
    """
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int), "decimal_digits needs a finite value"
    if not any(digits):
        return 0, 0
    significant = list(digits)  # never has leading zeros once the value is not zero
    while exponent < 0 and significant[-1] == 0:
        significant.pop()
        exponent += 1
    return max(0, len(significant) + exponent), max(0, -exponent)


def format_sqlite_time(value: datetime) -> str:
    """The fixed-width text of an aware instant (``strftime("%Y")`` drops leading zeros)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_sqlite_time(text: str) -> datetime:
    """The instant of a canonical SQLite time text; ``ValueError`` for anything else."""
    if len(text) != SQLITE_TIME_LENGTH or not text.endswith("Z"):
        raise ValueError(f"not a stored UTC time: {text!r}")
    # fromisoformat is C code and reads the trailing "Z" as UTC: ~10x faster
    # than strptime, which a page of orders calls hundreds of times.
    return datetime.fromisoformat(text)


class ExactDecimal(TypeDecorator[Decimal]):
    """``NUMERIC`` on PostgreSQL, exact decimal text on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ExactDecimal needs a Decimal, got {type(value).__name__}")
        if dialect.name == "sqlite":
            return format(value, "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on PostgreSQL; on SQLite, ISO text in UTC with microseconds.

    Naive datetimes are refused at bind time: a naive value is a bug upstream,
    and guessing its zone would corrupt data silently.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC datetime is required")
        if dialect.name == "sqlite":
            return format_sqlite_time(value)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return parse_sqlite_time(value)
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        raise TypeError(f"unexpected datetime value {value!r}")
