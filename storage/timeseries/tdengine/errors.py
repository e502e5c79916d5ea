"""TDengine failures, classified so the store knows whether waiting can help.

Both connectors report server errors as numeric codes (``taoserror.h``); the
low 16 bits identify the error. Only errors that are certainly about the
statement or the data are *permanent*: retrying them can never succeed, so the
write path reports them at once instead of buffering a batch that would be
stuck forever. Everything else, including errors without any code (dropped
sockets, a restarting taosAdapter), is treated as *transient*.
"""

from __future__ import annotations

import re

# Codes whose low 16 bits mean "the request itself is wrong" (TDengine 3.x taoserror.h).
_PERMANENT_CODES = frozenset(
    {
        0x0112,  # OUT_OF_RANGE
        0x0127,  # INVALID_TIMESTAMP
        0x013D,  # DECIMAL_OVERFLOW
        0x0200,  # TSC_INVALID_OPERATION
        0x0202,  # TSC_INVALID_TIME_STAMP
        0x0203,  # TSC_INVALID_VALUE
        0x0214,  # TSC_NO_WRITE_AUTH
        0x0216,  # TSC_SQL_SYNTAX_ERROR
        0x0219,  # TSC_EXCEED_SQL_LIMIT
        0x021E,  # TSC_INVALID_TAG_LENGTH
        0x021F,  # TSC_INVALID_COLUMN_LENGTH
        0x0224,  # TSC_VALUE_OUT_OF_RANGE
        0x0229,  # TSC_INVALID_INPUT
        0x0303,  # MND_NO_RIGHTS
        0x0357,  # MND_AUTH_FAILURE
        0x0362,  # MND_STB_NOT_EXIST
        0x0388,  # MND_DB_NOT_EXIST
        0x0512,  # VND_NO_WRITE_AUTH
        0x060B,  # TDB_TIMESTAMP_OUT_OF_RANGE (older than KEEP)
        0x0615,  # TDB_IVLD_TAG_VAL
        0x061D,  # TDB_TABLE_IN_OTHER_STABLE
    }
)
_PARSER_CODES = range(0x2600, 0x2700)  # TSDB_CODE_PAR_*: the SQL text is wrong
_GRANT_CODES = range(0x0800, 0x0900)  # licence limits do not lift by waiting

_CODE_IN_MESSAGE = re.compile(r"0x([0-9a-fA-F]{4,8})")


class TDengineError(Exception):
    """A TDengine call failed; ``code`` is the low 16 bits of the server code, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message if code is None else f"[0x{code:04x}] {message}")
        self.code = code

    @property
    def transient(self) -> bool:
        return is_transient(self.code)


class TDengineConfigError(Exception):
    """The store cannot be used as configured (bad URL, missing client library, wrong schema)."""


def is_transient(code: int | None) -> bool:
    if code is None:
        return True
    return not (code in _PERMANENT_CODES or code in _PARSER_CODES or code in _GRANT_CODES)


def code_from(errno: object, message: str) -> int | None:
    """The low 16 bits of a connector's error number, or of a code quoted in its message."""
    if isinstance(errno, int) and errno not in (0, -1, 0xFFFF):
        return errno & 0xFFFF
    match = _CODE_IN_MESSAGE.search(message)
    if match is None:
        return None
    return int(match.group(1), 16) & 0xFFFF
