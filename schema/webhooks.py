"""Webhooks: the webhook and delivery types and the payloads of registerWebhook and
deleteWebhook (the fields themselves are declared by ``schema.query.Query`` and
``schema.mutation.Mutation``)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.webhooks import registry as domain
from schema.common import UserError, user_errors
from schema.enums import WebhookDeliveryStatus, WebhookEvent
from storage import models


@strawberry.type(description="One of your webhooks: an HTTP(S) URL that receives your events.")
class Webhook:
    id: strawberry.ID = strawberry.field(description="Webhook id.")
    url: str = strawberry.field(description="Where deliveries are POSTed.")
    events: list[WebhookEvent] = strawberry.field(description="The events it receives.")
    created_at: datetime = strawberry.field(description="Registration time.")

    @classmethod
    def from_row(cls, row: models.Webhook) -> Webhook:
        return cls(
            id=strawberry.ID(str(row.id)),
            url=row.url,
            events=domain.events_of(row),
            created_at=row.created_at,
        )


@strawberry.type(description="One event for one of your webhooks, and how its delivery went.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(
        description="Delivery id (the `X-Quantgraph-Delivery` header)."
    )
    webhook_id: strawberry.ID = strawberry.field(description="The webhook it is for.")
    event: WebhookEvent = strawberry.field(description="The event.")
    status: WebhookDeliveryStatus = strawberry.field(description="PENDING, DELIVERED or DEAD.")
    attempts: int = strawberry.field(description="POSTs made so far.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt is due; null once DELIVERED or DEAD."
    )
    last_status_code: int | None = strawberry.field(
        description="HTTP status of the last answer; null when there was none."
    )
    last_error: str | None = strawberry.field(
        description='Why the last attempt failed (e.g. "HTTP 500", "timed out after 5 s").'
    )
    payload: str = strawberry.field(description="The JSON body POSTed.")
    created_at: datetime = strawberry.field(description="When the event was enqueued.")
    finished_at: datetime | None = strawberry.field(description="When it became DELIVERED or DEAD.")

    @classmethod
    def from_row(cls, row: models.WebhookDelivery) -> WebhookDelivery:
        status = domain.DeliveryStatus(row.status)
        return cls(
            id=strawberry.ID(str(row.id)),
            webhook_id=strawberry.ID(str(row.webhook_id)),
            event=domain.WebhookEvent(row.event),
            status=status,
            attempts=row.attempts,
            next_attempt_at=(
                row.next_attempt_at if status is domain.DeliveryStatus.PENDING else None
            ),
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            payload=row.payload,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )


@strawberry.type(description="Result of registerWebhook.")
class RegisterWebhookPayload:
    webhook: Webhook | None = strawberry.field(description="The new webhook; null on errors.")
    secret: str | None = strawberry.field(
        description=(
            "The secret that signs its deliveries (HMAC-SHA256, see docs/webhooks.md). "
            "Shown only here, once: keep it."
        )
    )
    user_errors: list[UserError] = strawberry.field(description="Problems with the input.")

    @classmethod
    def from_outcome(cls, outcome: domain.WebhookOutcome) -> RegisterWebhookPayload:
        webhook = Webhook.from_row(outcome.webhook) if outcome.webhook is not None else None
        return cls(webhook=webhook, secret=outcome.secret, user_errors=user_errors(outcome.errors))


@strawberry.type(description="Result of deleteWebhook.")
class DeleteWebhookPayload:
    deleted_webhook_id: strawberry.ID | None = strawberry.field(
        description="Id of the deleted webhook; null on errors."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it was not deleted.")

    @classmethod
    def from_outcome(cls, outcome: domain.WebhookOutcome) -> DeleteWebhookPayload:
        deleted = (
            strawberry.ID(str(outcome.webhook.id))
            if outcome.webhook is not None and not outcome.errors
            else None
        )
        return cls(deleted_webhook_id=deleted, user_errors=user_errors(outcome.errors))
