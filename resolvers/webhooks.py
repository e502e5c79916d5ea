"""Webhook resolvers: the caller's webhooks and delivery log, and the webhook mutations."""

from __future__ import annotations

from graphql_api.webhooks.registry import (
    DELIVERY_LIST,
    DeliveryStatus,
    WebhookEvent,
    WebhookOutcome,
    deliveries_query,
    webhooks_of,
)
from resolvers.context import Info
from resolvers.pagination import Page, Paging, parse_id, read_page
from storage import models

DELIVERY_CURSOR = "webhookDelivery"


async def webhooks(info: Info) -> list[models.Webhook]:
    return await webhooks_of(info.context.services.sessions, info.context.user_id)


async def deliveries(
    info: Info,
    webhook_id: str | None,
    statuses: list[DeliveryStatus] | None,
    paging: Paging,
) -> Page[models.WebhookDelivery]:
    window = paging.window(DELIVERY_CURSOR, info.context.services.settings.max_page_size)
    wanted = parse_id(webhook_id, "webhookId") if webhook_id is not None else None
    query = deliveries_query(info.context.user_id, webhook_id=wanted, statuses=statuses)
    return await read_page(info.context.services.sessions, query, DELIVERY_LIST, window)


async def register_webhook(info: Info, url: str, events: list[WebhookEvent]) -> WebhookOutcome:
    return await info.context.services.webhooks.register(info.context.user_id, url, events)


async def delete_webhook(info: Info, webhook_id: str) -> WebhookOutcome:
    return await info.context.services.webhooks.delete(info.context.user_id, parse_id(webhook_id))
