"""Closed positions: a symbol's fills grouped into round trips, from flat to flat.

The fills table is the ledger: every account starts flat, so walking a symbol's
fills in order gives its position at every moment. A round trip opens with the
fill that leaves flat and closes with the one that returns to flat (or flips
through it: that fill's quantity and commission are split between the trip it
closes and the one it opens, pro rata, exactly). Its P&L is the realised P&L of
its fills less their commission — net of both commissions, as a backtest's
round trip is — so live paper results and backtests compare like for like.

A reset of the account closes its positions without a trade: a trip still open
then is dropped (it never closed), and the walk goes on from flat.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

_ZERO = Decimal(0)


class Fill(Protocol):
    """What a fill contributes (``storage.models.Trade`` has these)."""

    @property
    def id(self) -> int: ...
    @property
    def symbol_code(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def commission(self) -> Decimal: ...
    @property
    def realized_pnl(self) -> Decimal: ...
    @property
    def tick_time(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class RoundTrip:
    symbol_code: str
    side: Literal["LONG", "SHORT"]
    quantity: Decimal  # the largest position held during the trip
    opened_at: datetime
    closed_at: datetime
    realized_pnl: Decimal  # price P&L of the reducing fills
    commission: Decimal  # every fill's commission (its share of a flipping fill)

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.commission


@dataclass(slots=True)
class _Open:
    side: Literal["LONG", "SHORT"]
    opened_at: datetime
    peak: Decimal = _ZERO
    realized: Decimal = _ZERO
    commission: Decimal = _ZERO


@dataclass(slots=True)
class _Walk:
    position: Decimal = _ZERO
    trip: _Open | None = None
    closed: list[RoundTrip] = field(default_factory=list)

    def add(self, symbol: str, fill: Fill) -> None:
        signed = fill.quantity if fill.side == "BUY" else -fill.quantity
        before, after = self.position, self.position + signed
        self.position = after
        if before == _ZERO:
            self.trip = _Open("LONG" if signed > 0 else "SHORT", fill.tick_time)
        trip = self.trip
        assert trip is not None
        crosses = before != _ZERO and after != _ZERO and (before > 0) != (after > 0)
        # The part of the fill that closes the open trip (all of it unless it flips).
        closing_share = abs(before) / fill.quantity if crosses else Decimal(1)
        trip.realized += fill.realized_pnl
        trip.commission += fill.commission * closing_share
        trip.peak = max(trip.peak, abs(before) if crosses else abs(after))
        if after == _ZERO or crosses:
            self.closed.append(
                RoundTrip(
                    symbol_code=symbol,
                    side=trip.side,
                    quantity=trip.peak,
                    opened_at=trip.opened_at,
                    closed_at=fill.tick_time,
                    realized_pnl=trip.realized,
                    commission=trip.commission,
                )
            )
            self.trip = None
        if crosses:
            reopened = _Open("LONG" if after > 0 else "SHORT", fill.tick_time, peak=abs(after))
            reopened.commission = fill.commission - fill.commission * closing_share
            self.trip = reopened


def round_trips(fills: Iterable[Fill], resets: Sequence[int] = ()) -> list[RoundTrip]:
    """The closed round trips of ``fills`` (every fill of the symbols they cover,
    oldest first), in the order they closed. ``resets`` are the account's resets,
    each as the id of the last fill before it, oldest first."""
    walks: dict[str, _Walk] = {}
    closed: list[RoundTrip] = []
    pending = list(resets)
    for fill in fills:
        while pending and pending[0] < fill.id:
            pending.pop(0)
            walks.clear()  # every position forced flat; open trips never closed
        walk = walks.setdefault(fill.symbol_code, _Walk())
        before = len(walk.closed)
        walk.add(fill.symbol_code, fill)
        closed.extend(walk.closed[before:])
    return closed
