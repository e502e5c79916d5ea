"""Exact encodings of decimals and instants as TDengine integers.

Prices and sizes are stored as ``BIGINT`` holding ``value * 10**8``. That is
exact for every value with at most 8 decimal places and ``|value| < 9.2e10``,
works on every TDengine 3.x server (``DECIMAL`` needs 3.3.6+), and keeps
``FIRST``/``LAST``/``MAX``/``MIN``/``SUM`` exact because the server computes
them on integers. Anything that does not fit is refused rather than rounded.

Instants travel as integers in the database precision, never as date strings:
strings are interpreted in the client's time zone, integers are not.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal

SCALE = 8
_FACTOR = 10**SCALE
BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1
MAX_ABS_VALUE = Decimal(BIGINT_MAX).scaleb(-SCALE)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
# Wide enough that no operation on 19-digit integers ever rounds.
_EXACT = Context(prec=60)
_ONE = Decimal(1)
# |value| < 9.3e10 has at most 11 integer digits; anything longer cannot fit.
_MAX_INTEGER_DIGITS = 11


class Precision(enum.Enum):
    """Database timestamp precision (``CREATE DATABASE ... PRECISION``)."""

    MILLISECONDS = "ms"
    MICROSECONDS = "us"
    NANOSECONDS = "ns"


def encode_decimal(value: Decimal) -> int:
    """``value * 10**8`` as an exact integer; ``ValueError`` if that is impossible."""
    if not isinstance(value, Decimal):
        raise ValueError(f"expected a Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite values have an integer exponent
    coefficient = int("".join(map(str, digits))) if digits else 0
    if coefficient == 0:
        return 0
    # Cheap bounds first, so absurd exponents never build giant integers.
    if len(digits) + exponent > _MAX_INTEGER_DIGITS:
        raise ValueError(f"{value} is outside the storable range ±{MAX_ABS_VALUE}")
    shift = exponent + SCALE
    if shift < 0 and -shift >= len(digits):
        raise ValueError(f"{value} has more than {SCALE} decimal places")
    scaled: int
    if shift >= 0:
        scaled = coefficient * int(10**shift)
    else:
        # 10**-shift is below the coefficient itself here: no amplification.
        scaled, remainder = divmod(coefficient, int(10**-shift))
        if remainder:
            raise ValueError(f"{value} has more than {SCALE} decimal places")
    if sign:
        scaled = -scaled
    if not BIGINT_MIN <= scaled <= BIGINT_MAX:
        raise ValueError(f"{value} is outside the storable range ±{MAX_ABS_VALUE}")
    return scaled


def decode_decimal(scaled: int) -> Decimal:
    """The exact value of a stored integer, without trailing zeros or exponent notation.

    Decimal equality ignores scale (``Decimal('1.50') == Decimal('1.5')``), so the
    canonical form compares equal to whatever was written while printing tidily.
    """
    value = Decimal(int(scaled)).scaleb(-SCALE, context=_EXACT)
    if not value:
        return Decimal(0)
    value = value.normalize(context=_EXACT)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        value = value.quantize(_ONE, context=_EXACT)
    return value


def _micros(moment: datetime) -> int:
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} where an aware UTC time is needed")
    return (moment - EPOCH) // _ONE_MICROSECOND


def encode_time(moment: datetime, precision: Precision) -> int:
    """An instant as an integer timestamp; ``ValueError`` if the precision would truncate it."""
    micros = _micros(moment)
    if precision is Precision.MILLISECONDS:
        millis, rest = divmod(micros, 1000)
        if rest:
            raise ValueError(
                f"{moment.isoformat()} has sub-millisecond digits; the database precision is ms"
            )
        return millis
    if precision is Precision.NANOSECONDS:
        return micros * 1000
    return micros


def encode_bound(moment: datetime, precision: Precision) -> int:
    """A range bound as an integer timestamp, rounded up.

    Stored timestamps are whole units, so ``ts >= x`` and ``ts < x`` select the
    same rows as comparing against ``ceil(x)``: rounding up keeps both the
    inclusive start and the exclusive end exact.
    """
    micros = _micros(moment)
    if precision is Precision.MILLISECONDS:
        return -(-micros // 1000)
    if precision is Precision.NANOSECONDS:
        return micros * 1000
    return micros


def decode_time(value: int, precision: Precision) -> datetime:
    """An aware UTC datetime from an integer timestamp (sub-microsecond digits are dropped)."""
    value = int(value)
    if precision is Precision.MILLISECONDS:
        micros = value * 1000
    elif precision is Precision.NANOSECONDS:
        micros = value // 1000
    else:
        micros = value
    return EPOCH + timedelta(microseconds=micros)
