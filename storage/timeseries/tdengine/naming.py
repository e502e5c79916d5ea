"""Sub-table names and tag values derived from symbols.

Symbols such as ``600519.SH`` are not valid TDengine identifiers, and even
escaped names may not contain a dot. A readable sanitised form alone would map
``A.B`` and ``A_B`` (or ``btcusdt`` and ``BTCUSDT``: unquoted names are
case-insensitive) to the same table, so every name carries a hash of the exact
symbol too: two distinct symbols share a table only if they sanitise alike
*and* collide in 64 bits of SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SYMBOL_MAX_BYTES = 32  # the ``symbol`` tag is VARCHAR(32)
EXCHANGE_MAX_BYTES = 16  # the ``exchange`` tag is VARCHAR(16)

TICKS_PREFIX = "t_"
BARS_1M_PREFIX = "m_"

_NOT_NAME_CHAR = re.compile(r"[^a-z0-9]")
_READABLE_PART_MAX = 40
_HASH_HEX_DIGITS = 16

# Suffixes of the canonical codes used on Chinese and Hong Kong markets.
_EXCHANGE_BY_SUFFIX = {
    "SH": "SSE",
    "SS": "SSE",
    "SZ": "SZSE",
    "BJ": "BSE",
    "HK": "HKEX",
}


def subtable_name(prefix: str, symbol: str) -> str:
    """A deterministic, valid, collision-resistant sub-table name for ``symbol``.

    The result is lower case, starts with ``prefix`` (a letter), and only
    contains ``[a-z0-9_]``, so it never needs quoting and never clashes with a
    reserved word.
    """
    readable = _NOT_NAME_CHAR.sub("_", symbol.lower())[:_READABLE_PART_MAX]
    digest = hashlib.sha256(symbol.encode("utf-8")).hexdigest()[:_HASH_HEX_DIGITS]
    return f"{prefix}{readable}_{digest}"


def symbol_problem(symbol: str) -> str | None:
    """Why ``symbol`` cannot be stored, or ``None`` when it can."""
    if not symbol:
        return "empty symbol"
    if len(symbol.encode("utf-8")) > SYMBOL_MAX_BYTES:
        return f"symbol {symbol[:40]!r} is longer than {SYMBOL_MAX_BYTES} bytes"
    if any(unicodedata.category(char).startswith("C") for char in symbol):
        return f"symbol {symbol!r} contains control characters"
    return None


def default_exchange(symbol: str) -> str:
    """The exchange tag implied by a ``CODE.SUFFIX`` symbol; empty when there is no known suffix."""
    _, dot, suffix = symbol.rpartition(".")
    if not dot:
        return ""
    return _EXCHANGE_BY_SUFFIX.get(suffix.upper(), "")
