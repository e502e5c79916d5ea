"""Numbers as clients write them: ASCII digits only, one reader per kind.

Python's own readers accept far more than a client means by a number:
``str.isdigit()`` is true for ``"²"``, and ``int()`` and ``Decimal()`` read
full-width (``"９"``), Arabic-Indic (``"٣"``) and other Unicode digits, as well
as underscores (``"1_000"``), surrounding whitespace and, for ``Decimal``,
exponents, ``NaN`` and ``Infinity``. An id, a cursor key, a price or a
quantity here is written with the ASCII digits 0-9 and nothing else, so every
number read from a request, a header or an imported file goes through one of
the two functions below, which raise :class:`NumberTextError` (a
``ValueError``) with a message fit for the client.
"""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = [
    "MAX_DECIMAL_LENGTH",
    "MAX_FRACTION_DIGITS",
    "MAX_INTEGER_DIGITS",
    "NumberOutOfRangeError",
    "NumberTextError",
    "parse_ascii_int",
    "parse_plain_decimal",
]

# Digits a decimal may carry on either side of the point (leading zeros of the
# integer part and trailing zeros of the fraction not counted): 10^20 exceeds
# any amount of money or quantity, and 18 places cover the finest crypto unit.
# Together they stay well inside the 40 significant digits exact arithmetic uses.
MAX_INTEGER_DIGITS = 20
MAX_FRACTION_DIGITS = 18
# Longest text read at all, zeros included, so reading never costs much.
MAX_DECIMAL_LENGTH = 64

_ASCII_INT = re.compile(r"[0-9]+", re.ASCII)
_PLAIN_DECIMAL = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?", re.ASCII)


class NumberTextError(ValueError):
    """The text is not a number of the expected form; ``str()`` says why."""


class NumberOutOfRangeError(NumberTextError):
    """The text is a number, but with more digits than any amount here has."""


def parse_ascii_int(text: str, *, max_digits: int) -> int:
    """A non-negative integer written with 1 to ``max_digits`` ASCII digits, nothing else."""
    if len(text) > max_digits or not _ASCII_INT.fullmatch(text):
        raise NumberTextError(f"{text!r} is not a whole number of at most {max_digits} digits")
    return int(text)


def parse_plain_decimal(text: str) -> Decimal:
    """A decimal in positional notation: optional sign, ASCII digits, optional point.

    ``"12.50"``, ``"-0.5"``, ``".5"`` and ``"5."`` are read; exponents, NaN,
    Infinity, separators, spaces and non-ASCII digits are not, nor more than
    ``MAX_INTEGER_DIGITS`` digits before the point or ``MAX_FRACTION_DIGITS``
    after it.
    """
    match = _PLAIN_DECIMAL.fullmatch(text) if len(text) <= MAX_DECIMAL_LENGTH else None
    if match is None or not (match.group(2) or match.group(3)):
        raise NumberTextError(f"{text!r} is not a plain decimal number such as 12.50")
    integer = match.group(2).lstrip("0")
    fraction = (match.group(3) or "").rstrip("0")
    if len(integer) > MAX_INTEGER_DIGITS:
        raise NumberOutOfRangeError(
            f"{text!r} has more than {MAX_INTEGER_DIGITS} digits before the decimal point"
        )
    if len(fraction) > MAX_FRACTION_DIGITS:
        raise NumberOutOfRangeError(
            f"{text!r} has more than {MAX_FRACTION_DIGITS} digits after the decimal point"
        )
    return Decimal(text)
