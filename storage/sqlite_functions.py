"""Functions SQLite lacks, registered on every connection the engine opens.

SQLite keeps our decimals as text (``ExactDecimal``), so SQL arithmetic on them
would go through floats. Where the database itself must add two stored decimals
(the kept reservations' increments, ``reserved = exact_add(reserved, delta)``),
it calls ``exact_add``, which adds the two texts as ``Decimal``; where it must
keep the larger or smaller of two (a minute bar's high and low, merged by an
upsert), ``exact_max`` and ``exact_min``, which compare them as ``Decimal``
(``MAX`` on text would say ``"9" > "10"``). PostgreSQL's NUMERIC needs none of this.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Any

EXACT = Context(prec=120)
"""Products and sums of reservations are kept exact: quantities and prices hold at
most 28 significant digits, so a product has at most 56 and the sums stay far
below this precision (the default context's 28 could round them)."""


def exact_add(left: Any, right: Any) -> str:
    """SQLite's ``exact_add(a, b)``: the sum of two decimal texts, as decimal text."""
    return format(EXACT.add(_as_decimal(left), _as_decimal(right)), "f")


def exact_max(left: Any, right: Any) -> Any:
    """SQLite's ``exact_max(a, b)``: the larger decimal text, as stored (``a`` on a tie)."""
    return right if _as_decimal(right) > _as_decimal(left) else left


def exact_min(left: Any, right: Any) -> Any:
    """SQLite's ``exact_min(a, b)``: the smaller decimal text, as stored (``a`` on a tie)."""
    return right if _as_decimal(right) < _as_decimal(left) else left


def _as_decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, float):  # never stored by ExactDecimal; refuse to guess
        raise TypeError(f"exact_add got a float: {value!r}")
    return Decimal(str(value))


def register_sqlite_functions(dbapi_connection: Any) -> None:
    """Make the exact functions available on a new SQLite connection (deterministic,
    so SQLite may use them anywhere)."""
    dbapi_connection.create_function("exact_add", 2, exact_add, deterministic=True)
    dbapi_connection.create_function("exact_max", 2, exact_max, deterministic=True)
    dbapi_connection.create_function("exact_min", 2, exact_min, deterministic=True)
