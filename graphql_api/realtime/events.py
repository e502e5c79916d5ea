"""Wire format of realtime events on the broadcaster (channel names: :mod:`.channels`).

Events cross process boundaries (Redis), so they are JSON text with decimals as
strings and times as ISO 8601 UTC — the same representation GraphQL uses.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from storage import models
from storage.timeseries import Tick


def encode_tick(tick: Tick) -> str:
    return json.dumps(
        {
            "symbol": tick.symbol,
            "time": tick.time.isoformat(),
            "last": str(tick.last),
            "bid": str(tick.bid),
            "ask": str(tick.ask),
            "volume": str(tick.volume),
        },
        separators=(",", ":"),
    )


def decode_tick(message: str) -> Tick:
    data = json.loads(message)
    return Tick(
        symbol=data["symbol"],
        time=datetime.fromisoformat(data["time"]),
        last=Decimal(data["last"]),
        bid=Decimal(data["bid"]),
        ask=Decimal(data["ask"]),
        volume=Decimal(data["volume"]),
    )


def encode_id_event(kind: str, object_id: int, **extra: Any) -> str:
    """Order and signal events carry ids only: subscribers load the current row,
    so a slow subscriber never shows a stale copy of the object."""
    return json.dumps({"kind": kind, "id": object_id, **extra}, separators=(",", ":"))


def decode_id_event(message: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(message)
    return data


def encode_new_order(order: models.Order) -> str:
    """A new (or amended) order with everything the matcher needs to book it without a
    query; booking an id again replaces what the book held under it."""
    return json.dumps(
        {
            "kind": "order",
            "id": order.id,
            "symbol": order.symbol_code,
            "side": order.side,
            "type": order.type,
            "timeInForce": order.time_in_force,
            "limitPrice": None if order.limit_price is None else str(order.limit_price),
            "remaining": str(order.quantity - order.filled_quantity),
            "version": order.version,
            "expiresAt": None if order.expires_at is None else order.expires_at.isoformat(),
            "createdAt": order.created_at.isoformat(),
            "queueAnchor": order.queue_anchor,
            "queuedAt": None if order.queued_at is None else order.queued_at.isoformat(),
            "stopPrice": None if order.stop_price is None else str(order.stop_price),
            "triggered": order.triggered_at is not None,
        },
        separators=(",", ":"),
    )


def encode_closed_order(order: models.Order) -> str:
    """An order that no longer rests (canceled): the matcher takes it out of its book
    at once instead of at its next fill attempt or resync."""
    return json.dumps(
        {
            "kind": "closed",
            "id": order.id,
            "symbol": order.symbol_code,
            "version": order.version,
        },
        separators=(",", ":"),
    )
