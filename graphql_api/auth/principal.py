"""Who is calling, and what their role lets them do."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Role(enum.Enum):
    VIEWER = "VIEWER"  # market data only
    TRADER = "TRADER"  # own orders and strategies
    FEED = "FEED"  # may push ticks (ingestTicks)
    ADMIN = "ADMIN"  # everything

    @property
    def can_trade(self) -> bool:
        return self in (Role.TRADER, Role.ADMIN)

    @property
    def can_feed(self) -> bool:
        return self in (Role.FEED, Role.ADMIN)

    @property
    def can_administer(self) -> bool:
        """List, change, halt and resume symbols, and read their audit."""
        return self is Role.ADMIN


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: Role
    session_id: str
    expires_at: datetime
