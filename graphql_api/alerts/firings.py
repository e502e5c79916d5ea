"""Store a trigger as a firing, once, and announce it — in one transaction.

The firing row is unique per (alert, trigger time): an evaluator that lost its
leadership mid-tick and a new leader evaluating the same tick cannot both
store it (the loser's insert fails and is dropped). A ``ONCE`` alert moves
ACTIVE → FIRED in the same transaction, conditionally, so a paused, deleted or
already fired alert never fires (again). The announcement on
:func:`~graphql_api.realtime.channels.alert_channel` is staged in the event
outbox, so it reaches subscribers once committed, even after a bus outage, and
a delivery is enqueued for each of the user's webhooks that wants ``ALERT_FIRED``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import CursorResult, or_, update
from sqlalchemy.exc import IntegrityError

from graphql_api.alerts.book import Trigger
from graphql_api.alerts.conditions import AlertMode, AlertStatus
from graphql_api.realtime.channels import alert_channel
from graphql_api.realtime.events import encode_id_event
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.webhooks.registry import WebhookEvent, enqueue
from storage import models
from storage.engine import SessionFactory

__all__ = ["record_firing", "webhook_body"]

log = structlog.get_logger(__name__)


async def record_firing(
    sessions: SessionFactory, outbox: EventOutbox, trigger: Trigger
) -> models.AlertFiring | None:
    """The stored firing, or None: the alert can no longer fire (paused, deleted,
    expired, fired), or this trigger was already stored."""
    alert = trigger.alert
    now = datetime.now(UTC)
    row = models.Alert
    values: dict[str, Any] = {
        "fire_count": row.fire_count + 1,
        "last_fired_at": trigger.at,
    }
    if alert.mode is AlertMode.ONCE:
        values["status"] = AlertStatus.FIRED.value
    async with sessions() as session:
        changed: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
            update(row)
            .where(
                row.id == alert.id,
                row.status == AlertStatus.ACTIVE.value,
                or_(row.expires_at.is_(None), row.expires_at > now),
            )
            .values(**values)
        )
        if changed.rowcount == 0:
            await session.rollback()
            return None
        firing = models.AlertFiring(
            alert_id=alert.id,
            user_id=alert.user_id,
            symbol_code=alert.symbol,
            kind=alert.kind.value,
            price=trigger.price,
            value=trigger.value,
            message=trigger.message,
            triggered_at=trigger.at,
            created_at=now,
        )
        session.add(firing)
        try:
            await session.flush()
            outbox.stage(
                session,
                alert_channel(alert.user_id),
                encode_id_event("alertFiring", firing.id, alertId=alert.id),
            )
            await enqueue(
                session,
                outbox,
                alert.user_id,
                WebhookEvent.ALERT_FIRED,
                f"alertFiring:{firing.id}",
                webhook_body(firing),
            )
            await session.commit()
        except IntegrityError:
            await session.rollback()
            log.info("alert firing already stored", alert_id=alert.id, at=trigger.at)
            return None
    return firing


def webhook_body(firing: models.AlertFiring) -> str:
    """The JSON a webhook receives for a firing (amounts as strings, times ISO 8601)."""
    return json.dumps(
        {
            "event": WebhookEvent.ALERT_FIRED.value,
            "alertFiring": {
                "id": str(firing.id),
                "alertId": str(firing.alert_id),
                "symbol": firing.symbol_code,
                "kind": firing.kind,
                "price": format(firing.price, "f"),
                "value": format(firing.value, "f") if firing.value is not None else None,
                "message": firing.message,
                "triggeredAt": firing.triggered_at.isoformat(),
            },
        },
        separators=(",", ":"),
    )
