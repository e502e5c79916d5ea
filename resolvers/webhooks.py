"""Webhook resolvers: the caller's webhooks and delivery log, and the webhook mutations."""

from __future__ import annotations

from graphql_api.webhooks.registry import (
    DeliveryStatus,
    WebhookEvent,
    WebhookOutcome,
    deliveries_page,
    webhooks_of,
)
from resolvers.context import Info
from resolvers.pagination import Page, check_page_size, decode_int_cursor, page_from_rows, parse_id
from storage import models

DELIVERY_CURSOR = "webhookDelivery"


async def webhooks(info: Info) -> list[models.Webhook]:
    return await webhooks_of(info.context.services.sessions, info.context.user_id)


async def deliveries(
    info: Info,
    webhook_id: str | None,
    statuses: list[DeliveryStatus] | None,
    first: int,
    after: str | None,
) -> Page[models.WebhookDelivery]:
    first = check_page_size(first, info.context.services.settings.max_page_size)
    rows = await deliveries_page(
        info.context.services.sessions,
        info.context.user_id,
        webhook_id=parse_id(webhook_id, "webhookId") if webhook_id is not None else None,
        statuses=statuses,
        after_id=decode_int_cursor(DELIVERY_CURSOR, after),
        limit=first + 1,
    )
    return page_from_rows(rows, first)


async def register_webhook(info: Info, url: str, events: list[WebhookEvent]) -> WebhookOutcome:
    return await info.context.services.webhooks.register(info.context.user_id, url, events)


async def delete_webhook(info: Info, webhook_id: str) -> WebhookOutcome:
    return await info.context.services.webhooks.delete(info.context.user_id, parse_id(webhook_id))
