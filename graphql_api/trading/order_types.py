"""Order vocabulary shared by order entry, risk checks and the matcher."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class OrderSide(enum.Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    # Wait for the last price to reach ``stop_price``, then act as MARKET / LIMIT.
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})
# The types that carry a limit price.
LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})


class TimeInForce(enum.Enum):
    GTC = "GTC"
    DAY = "DAY"
    IOC = "IOC"
    # Fill or kill: the whole quantity on the next eligible tick, or nothing.
    FOK = "FOK"
    # Good till date: rests until its explicit ``expires_at``.
    GTD = "GTD"


# Orders that act on their next eligible tick and never rest in a price level.
IMMEDIATE_TIME_IN_FORCE = frozenset({TimeInForce.IOC, TimeInForce.FOK})


class OrderStatus(enum.Enum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


OPEN_STATUSES = frozenset({OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value})
MAX_CLIENT_ORDER_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    client_order_id: str | None = None
    strategy_id: int | None = None
    # GTD only: when the order expires (aware).
    expires_at: datetime | None = None
    # STOP and STOP_LIMIT only: the last price that triggers the order.
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderChange:
    """An order as a committed change left it: what ``orderUpdates`` announces and
    what the matcher's book needs (``remaining`` 0 or a closed ``status``: forget it)."""

    id: int
    user_id: int
    status: str
    version: int
    remaining: Decimal

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES
