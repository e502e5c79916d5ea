"""What an administrator may say about a symbol, and the one set of rules it is held to.

``createSymbol``, ``updateSymbol`` and ``quantgraph import-symbols`` all build a
draft here and get the same user errors for the same input: codes and
currencies in their canonical upper-case spelling, names under the shared text
rules (:func:`graphql_api.platform.names.check_name`), tick and lot sizes
positive, finite and within the digits the stores keep exactly
(:func:`graphql_api.market.value_ranges.check_digits`).

The trading session is its own input object (:class:`SessionDraft`): an IANA
time zone, weekly windows of wall-clock hours and the off-session order policy;
:func:`session_of` turns a checked one into the
:class:`~graphql_api.market.sessions.TradingSession` that is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from graphql_api.market.sessions import (
    OffSessionOrders,
    SessionError,
    TradingSession,
    TradingWindow,
    Weekday,
    parse_minute,
)
from graphql_api.market.sessions import format_minute as format_clock
from graphql_api.market.value_ranges import check_digits
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.names import check_name
from graphql_api.platform.settings import CURRENCY_PATTERN

__all__ = [
    "CODE_PATTERN",
    "EXCHANGE_PATTERN",
    "MAX_CODE_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_WINDOWS",
    "SessionDraft",
    "SymbolChanges",
    "SymbolDraft",
    "canonical_code",
    "canonical_step",
    "check_changes",
    "check_draft",
    "session_of",
]

MAX_CODE_LENGTH = 32  # the column's width
MAX_NAME_LENGTH = 128
MAX_WINDOWS = 32  # a week of several windows a day; more is a mistake
# 600519.SH, 000001.SZ, BTCUSDT, AAPL, BRK.B: letters, digits and . - _ after the first.
CODE_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,31}")
EXCHANGE_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,15}")


@dataclass(frozen=True, slots=True)
class WindowDraft:
    """One weekly window as given: the days it opens on, ``open`` and ``close`` as
    ``HH:MM`` wall-clock times (``24:00`` closes at midnight; a close at or before
    the open is on the next day)."""

    days: frozenset[Weekday]
    open: str
    close: str


@dataclass(frozen=True, slots=True)
class SessionDraft:
    """A symbol's trading session as given: IANA ``timezone``, ``windows``, and what
    an order placed outside them gets."""

    timezone: str
    windows: tuple[WindowDraft, ...]
    off_session_orders: OffSessionOrders = OffSessionOrders.REFUSE

    @classmethod
    def of(cls, session: TradingSession, off_session_orders: OffSessionOrders) -> SessionDraft:
        """The draft that describes a stored session."""
        windows = tuple(
            WindowDraft(window.days, format_clock(window.open), format_clock(window.close))
            for window in session.windows
        )
        return cls(session.timezone, windows, off_session_orders)


@dataclass(frozen=True, slots=True)
class SymbolDraft:
    """A new symbol, as given (canonicalised by :func:`check_draft`)."""

    code: str
    name: str
    exchange: str
    currency: str
    tick_size: Decimal
    lot_size: Decimal
    session: SessionDraft


@dataclass(frozen=True, slots=True)
class SymbolChanges:
    """What ``updateSymbol`` changes; None leaves a field as it is."""

    name: str | None = None
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    session: SessionDraft | None = None


def canonical_code(code: str) -> str:
    """How codes are stored and looked up: trimmed, upper case."""
    return code.strip().upper()


def canonical_step(value: Decimal) -> Decimal:
    """``0.010`` is stored as ``0.01`` (prices are shown at the tick size's scale), and
    ``1E+2`` as ``100``; the value itself never changes."""
    normal = value.normalize()
    _, _, exponent = normal.as_tuple()
    return normal.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normal


def check_draft(draft: SymbolDraft) -> tuple[SymbolDraft, list[UserError]]:
    """The draft in canonical form, and every problem with it (nothing is stored if any)."""
    errors: list[UserError] = []
    code = canonical_code(draft.code)
    if not CODE_PATTERN.fullmatch(code):
        errors.append(
            UserError(
                "code",
                ErrorCode.INVALID,
                f"code must be 1 to {MAX_CODE_LENGTH} letters, digits, '.', '-' or '_', "
                "starting with a letter or digit (e.g. AAPL, 600519.SH)",
            )
        )
    exchange = draft.exchange.strip().upper()
    if not EXCHANGE_PATTERN.fullmatch(exchange):
        errors.append(
            UserError(
                "exchange",
                ErrorCode.INVALID,
                "exchange must be 1 to 16 letters, digits or '_', starting with a letter "
                "(e.g. NASDAQ)",
            )
        )
    currency = draft.currency.strip().upper()
    if not CURRENCY_PATTERN.fullmatch(currency):
        errors.append(
            UserError(
                "currency",
                ErrorCode.INVALID,
                "currency must be 3 to 8 letters or digits, starting with a letter "
                "(e.g. USD, USDT)",
            )
        )
    errors += check_name("name", draft.name, max_length=MAX_NAME_LENGTH)
    tick_size, tick_errors = _check_step("tickSize", draft.tick_size)
    lot_size, lot_errors = _check_step("lotSize", draft.lot_size)
    errors += tick_errors + lot_errors + _check_session("session", draft.session)
    canonical = SymbolDraft(
        code=code,
        name=draft.name.strip(),
        exchange=exchange,
        currency=currency,
        tick_size=tick_size,
        lot_size=lot_size,
        session=draft.session,
    )
    return canonical, errors


def check_changes(changes: SymbolChanges) -> tuple[SymbolChanges, list[UserError]]:
    """The changes in canonical form, and every problem with them."""
    errors: list[UserError] = []
    name = tick_size = lot_size = None
    if changes.name is not None:
        errors += check_name("name", changes.name, max_length=MAX_NAME_LENGTH)
        name = changes.name.strip()
    if changes.tick_size is not None:
        tick_size, found = _check_step("tickSize", changes.tick_size)
        errors += found
    if changes.lot_size is not None:
        lot_size, found = _check_step("lotSize", changes.lot_size)
        errors += found
    if changes.session is not None:
        errors += _check_session("session", changes.session)
    return SymbolChanges(name, tick_size, lot_size, changes.session), errors


def _check_step(field: str, value: Decimal) -> tuple[Decimal, list[UserError]]:
    """A tick or lot size: a positive, finite number the stores keep exactly."""
    if not value.is_finite() or value <= 0:
        return value, [UserError(field, ErrorCode.OUT_OF_RANGE, f"{field} must be positive")]
    too_long = check_digits(value, field, field)
    if too_long is not None:
        return value, [too_long]
    return canonical_step(value), []


def session_of(draft: SessionDraft) -> TradingSession:
    """The session a draft describes; :class:`SessionError` (with the field inside
    the session) when it cannot be built."""
    if len(draft.windows) > MAX_WINDOWS:
        raise SessionError("windows", f"a session has at most {MAX_WINDOWS} windows")
    windows = [
        TradingWindow(
            window.days,
            parse_minute(window.open, f"windows.{index}.open", closing=False),
            parse_minute(window.close, f"windows.{index}.close", closing=True),
        )
        for index, window in enumerate(draft.windows)
    ]
    for index, window in enumerate(windows):
        window.check(f"windows.{index}")  # before sorting, so the index is the caller's
    return TradingSession.create(draft.timezone, windows)


def _check_session(field: str, session: SessionDraft) -> list[UserError]:
    try:
        session_of(session)
    except SessionError as error:
        return [UserError(f"{field}.{error.field}", ErrorCode.INVALID, error.message)]
    return []
