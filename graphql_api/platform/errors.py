"""Expected business outcomes, as data.

Services return these instead of raising, so a mutation can report every
problem with the input at once and the resolver maps them to ``userErrors``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    NOT_ALLOWED = "NOT_ALLOWED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    INVALID_PRECISION = "INVALID_PRECISION"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    CONFLICT = "CONFLICT"
    NOT_CANCELABLE = "NOT_CANCELABLE"
    NOT_AMENDABLE = "NOT_AMENDABLE"
    # Risk refusals of an amendment, spelled as a placement's ``rejectReason``.
    SYMBOL_NOT_TRADABLE = "SYMBOL_NOT_TRADABLE"
    MARKET_CLOSED = "MARKET_CLOSED"
    NO_MARKET_PRICE = "NO_MARKET_PRICE"
    PRICE_OUT_OF_BAND = "PRICE_OUT_OF_BAND"
    MAX_NOTIONAL_EXCEEDED = "MAX_NOTIONAL_EXCEEDED"
    INSUFFICIENT_BUYING_POWER = "INSUFFICIENT_BUYING_POWER"
    INSUFFICIENT_POSITION = "INSUFFICIENT_POSITION"
    UNKNOWN_PARAMETER = "UNKNOWN_PARAMETER"
    INVALID_TYPE = "INVALID_TYPE"
    INVALID_COMBINATION = "INVALID_COMBINATION"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    INVALID_TOKEN = "INVALID_TOKEN"


_CODES_BY_NAME = {code.value: code for code in ErrorCode}


def error_code_named(name: str, default: ErrorCode = ErrorCode.INVALID) -> ErrorCode:
    """The :class:`ErrorCode` spelled ``name``, else ``default``.

    Lower layers (the strategy rules) report problems with their own codes;
    the ones that share a name with an :class:`ErrorCode` keep it.
    """
    return _CODES_BY_NAME.get(name, default)


@dataclass(frozen=True, slots=True)
class UserError:
    """One problem with the caller's input; ``field`` is a dotted path into the input."""

    field: str
    code: ErrorCode
    message: str


class ClientInputError(Exception):
    """A malformed request argument (not a business outcome): becomes BAD_USER_INPUT."""
