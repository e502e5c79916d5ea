"""Validation of incoming ticks, shared by ``ingestTicks``, the feed and imports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from graphql_api.market.symbols import SymbolSpec, is_multiple_of
from graphql_api.market.value_ranges import TimeWindow, check_digits
from graphql_api.platform.errors import ErrorCode, UserError
from storage.timeseries import Tick


@dataclass(frozen=True, slots=True)
class TickDraft:
    """A tick as a client sent it, before validation."""

    symbol: str
    time: datetime
    last: Decimal
    bid: Decimal | None
    ask: Decimal | None
    volume: Decimal


def check_tick(
    draft: TickDraft,
    spec: SymbolSpec | None,
    window: TimeWindow,
    path: str,
) -> tuple[Tick | None, list[UserError]]:
    """The tick, or the problems with it (each naming ``path.<field>``).

    The time is checked against ``window`` before it is converted to UTC: a
    year-1 time with a positive offset has no UTC equivalent at all.
    """
    if spec is None:
        return None, [
            UserError(
                f"{path}.symbol", ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {draft.symbol!r}"
            )
        ]
    if draft.time.tzinfo is None:
        return None, [UserError(f"{path}.time", ErrorCode.INVALID, "time must carry a UTC offset")]
    errors: list[UserError] = []
    time_error = window.check_time(draft.time, f"{path}.time")
    if time_error is not None:
        errors.append(time_error)
    bid = draft.bid if draft.bid is not None else draft.last
    ask = draft.ask if draft.ask is not None else draft.last
    for name, price in (("last", draft.last), ("bid", bid), ("ask", ask)):
        if not price.is_finite() or price <= 0:
            errors.append(
                UserError(f"{path}.{name}", ErrorCode.OUT_OF_RANGE, f"{name} must be positive")
            )
        elif (too_long := check_digits(price, f"{path}.{name}", name)) is not None:
            errors.append(too_long)
        elif not is_multiple_of(price, spec.tick_size):
            errors.append(
                UserError(
                    f"{path}.{name}",
                    ErrorCode.INVALID_PRECISION,
                    f"{name} {price} is not a multiple of the tick size {spec.tick_size}",
                )
            )
    if bid.is_finite() and ask.is_finite() and bid > ask:
        errors.append(UserError(f"{path}.bid", ErrorCode.INVALID, "bid is above ask"))
    if not draft.volume.is_finite() or draft.volume < 0:
        errors.append(
            UserError(f"{path}.volume", ErrorCode.OUT_OF_RANGE, "volume must not be negative")
        )
    elif (too_long := check_digits(draft.volume, f"{path}.volume", "volume")) is not None:
        errors.append(too_long)
    if errors:
        return None, errors
    tick = Tick(draft.symbol, draft.time.astimezone(UTC), draft.last, bid, ask, draft.volume)
    return tick, []
