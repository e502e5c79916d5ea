"""Webhooks: register and delete (one transaction each), the owner's reads, and enqueueing.

Registering checks the URL (:func:`~.addresses.check_url`, ``INVALID``), that
its host resolves (``INVALID``) and only to addresses webhooks may reach
(:func:`~.addresses.resolve_allowed`, ``NOT_ALLOWED``), the events
(``REQUIRED`` when none), and at most ``max_webhooks`` per user
(``OUT_OF_RANGE``). The new webhook's secret is returned once, with it; the
API never shows it again. Someone else's webhook is NOT_FOUND.

:func:`enqueue` adds an event's delivery for each of a user's webhooks that
subscribed to it, in the caller's transaction — the one that stores the event
— so an event is delivered if and only if it happened. The dispatcher is woken
through the event outbox once that transaction commits.
"""

from __future__ import annotations

import asyncio
import enum
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.realtime.channels import WEBHOOKS_CHANNEL
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.webhooks.addresses import (
    AddressNotAllowedError,
    HostNotResolvedError,
    check_url,
    resolve_allowed,
)
from graphql_api.webhooks.signing import new_secret
from storage import models
from storage.engine import SessionFactory
from storage.repositories.keyset import ListOrder

__all__ = [
    "DELIVERY_LIST",
    "DeliveryStatus",
    "WebhookEvent",
    "WebhookOutcome",
    "WebhookService",
    "deliveries_query",
    "enqueue",
    "webhooks_of",
]


class WebhookEvent(enum.Enum):
    ALERT_FIRED = "ALERT_FIRED"
    STRATEGY_SIGNAL = "STRATEGY_SIGNAL"
    ORDER_FILLED = "ORDER_FILLED"


class DeliveryStatus(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """The webhook after the change (before it, for a delete); ``secret`` only when
    it was just registered; None with errors."""

    webhook: models.Webhook | None
    errors: list[UserError]
    secret: str | None = None


def events_of(row: models.Webhook) -> list[WebhookEvent]:
    return [WebhookEvent(name) for name in row.events.split(",") if name]


class WebhookService:
    """Parameters:
    sessions: the relational database.
    max_webhooks: webhooks one user may have.
    allow_private: whether URLs may resolve to private, loopback or link-local
        addresses (``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``).
    """

    def __init__(self, sessions: SessionFactory, *, max_webhooks: int, allow_private: bool) -> None:
        self._sessions = sessions
        self.max_webhooks = max_webhooks
        self.allow_private = allow_private
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def register(
        self, user_id: int, url: str, events: Sequence[WebhookEvent]
    ) -> WebhookOutcome:
        errors: list[UserError] = []
        url = url.strip()
        problem = check_url(url)
        if problem is not None:
            errors.append(UserError("url", ErrorCode.INVALID, problem))
        else:
            try:
                await resolve_allowed(url, allow_private=self.allow_private)
            except AddressNotAllowedError as error:
                errors.append(UserError("url", ErrorCode.NOT_ALLOWED, str(error)))
            except HostNotResolvedError as error:
                errors.append(UserError("url", ErrorCode.INVALID, str(error)))
        if not events:
            errors.append(UserError("events", ErrorCode.REQUIRED, "name at least one event"))
        if errors:
            return WebhookOutcome(None, errors)
        async with self._user_locks[user_id], self._sessions() as session:
            await session.execute(
                select(models.User.id).where(models.User.id == user_id).with_for_update()
            )
            count = await session.scalar(
                select(func.count())
                .select_from(models.Webhook)
                .where(models.Webhook.user_id == user_id)
            )
            if int(count or 0) >= self.max_webhooks:
                return WebhookOutcome(
                    None,
                    [
                        UserError(
                            "url",
                            ErrorCode.OUT_OF_RANGE,
                            f"you have {self.max_webhooks} webhooks, the most allowed",
                        )
                    ],
                )
            secret = new_secret()
            row = models.Webhook(
                user_id=user_id,
                url=url,
                secret=secret,
                events=",".join(dict.fromkeys(event.value for event in events)),
                created_at=datetime.now(UTC),
            )
            session.add(row)
            await session.commit()
        return WebhookOutcome(row, [], secret)

    async def delete(self, user_id: int, webhook_id: int) -> WebhookOutcome:
        async with self._user_locks[user_id], self._sessions() as session:
            row = await session.get(models.Webhook, webhook_id)
            if row is None or row.user_id != user_id:
                return WebhookOutcome(
                    None, [UserError("id", ErrorCode.NOT_FOUND, "webhook not found")]
                )
            # Its deliveries (and their log) go with it (ON DELETE CASCADE).
            await session.execute(delete(models.Webhook).where(models.Webhook.id == webhook_id))
            await session.commit()
        return WebhookOutcome(row, [])


async def webhooks_of(
    sessions: SessionFactory, user_id: int, webhook_id: int | None = None
) -> list[models.Webhook]:
    """The user's webhooks, oldest first (or the one with ``webhook_id``, if theirs)."""
    query = select(models.Webhook).where(models.Webhook.user_id == user_id)
    if webhook_id is not None:
        query = query.where(models.Webhook.id == webhook_id)
    async with sessions() as session:
        return list(await session.scalars(query.order_by(models.Webhook.id)))


# The delivery log is listed newest first, keyset on the id.
DELIVERY_LIST = ListOrder(models.WebhookDelivery.id, descending=True)


def deliveries_query(
    user_id: int, *, webhook_id: int | None, statuses: list[DeliveryStatus] | None
) -> Select[models.WebhookDelivery]:
    """The delivery log of the user's webhooks (one webhook's; these statuses)."""
    delivery = models.WebhookDelivery
    owned = select(models.Webhook.id).where(models.Webhook.user_id == user_id)
    query = select(delivery).where(delivery.webhook_id.in_(owned))
    if webhook_id is not None:
        query = query.where(delivery.webhook_id == webhook_id)
    if statuses:
        query = query.where(delivery.status.in_([status.value for status in statuses]))
    return query


async def enqueue(
    session: AsyncSession,
    outbox: EventOutbox,
    user_id: int,
    event: WebhookEvent,
    key: str,
    payload: str,
) -> int:
    """Stage ``event`` for each of the user's webhooks that wants it; how many."""
    hooks = list(
        await session.scalars(select(models.Webhook).where(models.Webhook.user_id == user_id))
    )
    wanting = [hook for hook in hooks if event in events_of(hook)]
    now = datetime.now(UTC)
    for hook in wanting:
        session.add(
            models.WebhookDelivery(
                webhook_id=hook.id,
                event=event.value,
                event_key=key,
                payload=payload,
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                last_status_code=None,
                last_error=None,
                created_at=now,
                finished_at=None,
            )
        )
    if wanting:
        outbox.stage(session, WEBHOOKS_CHANNEL, "pending")
    return len(wanting)


async def enqueue_many(
    session: AsyncSession,
    outbox: EventOutbox,
    event: WebhookEvent,
    items: Sequence[tuple[int, str, str]],
) -> int:
    """Stage ``event`` deliveries for many ``(user_id, key, payload)`` at once: one
    read of the users' webhooks and one insert, for hot paths (a tick's fills)."""
    if not items:
        return 0
    users = sorted({user_id for user_id, _, _ in items})
    hooks = await session.scalars(select(models.Webhook).where(models.Webhook.user_id.in_(users)))
    wanting: dict[int, list[int]] = defaultdict(list)
    for hook in hooks:
        if event in events_of(hook):
            wanting[hook.user_id].append(hook.id)
    if not wanting:
        return 0
    now = datetime.now(UTC)
    rows = [
        {
            "webhook_id": hook_id,
            "event": event.value,
            "event_key": key,
            "payload": payload,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "last_status_code": None,
            "last_error": None,
            "created_at": now,
            "finished_at": None,
        }
        for user_id, key, payload in items
        for hook_id in wanting.get(user_id, ())
    ]
    if rows:
        await session.execute(insert(models.WebhookDelivery), rows)
        outbox.stage(session, WEBHOOKS_CHANNEL, "pending")
    return len(rows)
