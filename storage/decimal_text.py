"""Decimal text at a scale: the rule by which the API writes every amount.

Kept here, below the API, because the stores that hand bars over as text apply
it too (on PostgreSQL in the statement itself; see ``storage.timeseries.sql``),
so a 10,000-bar answer is written without a Python call per amount.
``resolvers.amounts`` says what the scales are and why.
"""

from __future__ import annotations


def plain_text_at_scale(text: str, places: int) -> str:
    """``resolvers.amounts.text_at_scale`` of a value already written in plain notation: by
    ``format(value, "f")``, or by a database casting a numeric to text (no exponent;
    trailing zeros do not matter). ``NaN`` and infinities are returned as written."""
    point = text.find(".")
    if point >= 0 and len(text) - point - 1 == places and text[-1] in _NONZERO_DIGITS:
        return text  # the common case, a database's text at the scale: as it is
    if not text or text[-1] not in _DIGITS:
        return text
    have = 0
    if point >= 0:
        text = text.rstrip("0")
        have = len(text) - point - 1
        if have == 0:
            text = text[:point]
    if have >= places:
        return text  # at its scale, or more significant decimals: kept all
    return text + ("." if have == 0 else "") + "0" * (places - have)


_DIGITS = frozenset("0123456789")
_NONZERO_DIGITS = frozenset("123456789")
