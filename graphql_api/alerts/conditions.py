"""What an alert can watch, and which inputs each kind takes.

Kinds, on one symbol:

- ``PRICE_CROSSES_ABOVE`` / ``PRICE_CROSSES_BELOW`` ``level``: the last price
  moves from below the level to at or above it (from above to at or below it).
  A crossing needs a price on the other side first: an alert created while the
  price is already past its level waits for the price to come back and cross.
- ``PRICE_RISES_PERCENT`` / ``PRICE_FALLS_PERCENT`` ``percent`` within
  ``window_seconds``: the last price is at least ``percent`` % above the lowest
  (below the highest) price of the ticks in the window before it.
- ``INDICATOR_CROSSES_ABOVE`` / ``INDICATOR_CROSSES_BELOW`` ``level``: the
  ``indicator`` (RSI, SMA or EMA of ``period`` closes) on closed ``interval``
  bars moves from below the level to at or above it (or the reverse) from one
  closed bar to the next — e.g. RSI(14) crosses below 30 on 1m bars.

``ONCE`` alerts fire one time and are then ``FIRED``; ``REARM`` alerts fire at
every new crossing (a price alert must cross back first; a move alert fires at
most once per window). Any alert may carry ``expires_at``: it is ``EXPIRED``
from then on and never fires.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from graphql_api.market.value_ranges import check_digits
from graphql_api.platform.errors import ErrorCode, UserError
from storage.timeseries import KlineInterval

__all__ = [
    "MAX_NOTE_LENGTH",
    "MAX_PERIOD",
    "MAX_WINDOW_SECONDS",
    "AlertDraft",
    "AlertIndicator",
    "AlertKind",
    "AlertMode",
    "AlertStatus",
    "check_draft",
]

MAX_NOTE_LENGTH = 500
MAX_PERIOD = 200
MAX_WINDOW_SECONDS = 7 * 24 * 3600
MAX_PERCENT = Decimal(1000)


class AlertKind(enum.Enum):
    PRICE_CROSSES_ABOVE = "PRICE_CROSSES_ABOVE"
    PRICE_CROSSES_BELOW = "PRICE_CROSSES_BELOW"
    PRICE_RISES_PERCENT = "PRICE_RISES_PERCENT"
    PRICE_FALLS_PERCENT = "PRICE_FALLS_PERCENT"
    INDICATOR_CROSSES_ABOVE = "INDICATOR_CROSSES_ABOVE"
    INDICATOR_CROSSES_BELOW = "INDICATOR_CROSSES_BELOW"

    @property
    def is_price_cross(self) -> bool:
        return self in (AlertKind.PRICE_CROSSES_ABOVE, AlertKind.PRICE_CROSSES_BELOW)

    @property
    def is_move(self) -> bool:
        return self in (AlertKind.PRICE_RISES_PERCENT, AlertKind.PRICE_FALLS_PERCENT)

    @property
    def is_indicator(self) -> bool:
        return self in (AlertKind.INDICATOR_CROSSES_ABOVE, AlertKind.INDICATOR_CROSSES_BELOW)

    @property
    def upward(self) -> bool:
        return self in (
            AlertKind.PRICE_CROSSES_ABOVE,
            AlertKind.PRICE_RISES_PERCENT,
            AlertKind.INDICATOR_CROSSES_ABOVE,
        )


class AlertMode(enum.Enum):
    ONCE = "ONCE"
    REARM = "REARM"


class AlertStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    FIRED = "FIRED"
    EXPIRED = "EXPIRED"


class AlertIndicator(enum.Enum):
    RSI = "RSI"
    SMA = "SMA"
    EMA = "EMA"


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """A new alert as the user asked for it (``symbol`` in any case)."""

    symbol: str
    kind: AlertKind
    mode: AlertMode = AlertMode.ONCE
    level: Decimal | None = None
    percent: Decimal | None = None
    window_seconds: int | None = None
    interval: KlineInterval | None = None
    indicator: AlertIndicator | None = None
    period: int | None = None
    expires_at: datetime | None = None
    note: str | None = None


# Which optional inputs each family of kinds takes.
_PRICE_FIELDS = {"level"}
_MOVE_FIELDS = {"percent", "window_seconds"}
_INDICATOR_FIELDS = {"level", "interval", "indicator", "period"}
_OPTIONAL = ("level", "percent", "window_seconds", "interval", "indicator", "period")
_INPUT_NAMES = {
    "level": "level",
    "percent": "percent",
    "window_seconds": "windowSeconds",
    "interval": "interval",
    "indicator": "indicator",
    "period": "period",
}


def check_draft(draft: AlertDraft, now: datetime) -> list[UserError]:
    """Every problem with ``draft``'s inputs (the symbol is the service's to check)."""
    kind = draft.kind
    wanted = (
        _PRICE_FIELDS
        if kind.is_price_cross
        else _MOVE_FIELDS
        if kind.is_move
        else _INDICATOR_FIELDS
    )
    errors: list[UserError] = []
    for name in _OPTIONAL:
        given = getattr(draft, name) is not None
        field = _INPUT_NAMES[name]
        if name in wanted and not given:
            errors.append(UserError(field, ErrorCode.REQUIRED, f"{kind.value} needs {field}"))
        elif name not in wanted and given:
            errors.append(
                UserError(field, ErrorCode.INVALID_COMBINATION, f"{kind.value} takes no {field}")
            )
    if draft.level is not None:
        errors.extend(_positive(draft.level, "level", allow_zero=kind.is_indicator))
    if draft.percent is not None:
        errors.extend(_positive(draft.percent, "percent", allow_zero=False))
        if draft.percent.is_finite() and draft.percent > MAX_PERCENT:
            errors.append(
                UserError("percent", ErrorCode.OUT_OF_RANGE, f"percent is at most {MAX_PERCENT}")
            )
    if draft.window_seconds is not None and not 1 <= draft.window_seconds <= MAX_WINDOW_SECONDS:
        errors.append(
            UserError(
                "windowSeconds",
                ErrorCode.OUT_OF_RANGE,
                f"windowSeconds must be between 1 and {MAX_WINDOW_SECONDS}",
            )
        )
    if draft.interval is not None and not draft.interval.is_intraday:
        errors.append(
            UserError("interval", ErrorCode.INVALID, "indicator alerts run on intraday bars")
        )
    if draft.period is not None and not 2 <= draft.period <= MAX_PERIOD:
        errors.append(
            UserError(
                "period", ErrorCode.OUT_OF_RANGE, f"period must be between 2 and {MAX_PERIOD}"
            )
        )
    if draft.indicator is AlertIndicator.RSI and draft.level is not None and draft.level > 100:
        errors.append(UserError("level", ErrorCode.OUT_OF_RANGE, "an RSI level is 0 to 100"))
    if draft.expires_at is not None:
        if draft.expires_at.tzinfo is None:
            errors.append(
                UserError("expiresAt", ErrorCode.INVALID, "expiresAt must carry a UTC offset")
            )
        elif draft.expires_at <= now:
            errors.append(
                UserError("expiresAt", ErrorCode.OUT_OF_RANGE, "expiresAt must be in the future")
            )
    if draft.note is not None and len(draft.note) > MAX_NOTE_LENGTH:
        errors.append(
            UserError(
                "note", ErrorCode.OUT_OF_RANGE, f"note is at most {MAX_NOTE_LENGTH} characters"
            )
        )
    return errors


def _positive(value: Decimal, field: str, *, allow_zero: bool) -> list[UserError]:
    if not value.is_finite() or value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        return [UserError(field, ErrorCode.OUT_OF_RANGE, f"{field} must be {bound}")]
    digits = check_digits(value, field, field)
    return [digits] if digits is not None else []
