"""Alert resolvers: the caller's alerts and firings (paged), the alert mutations, and the
live stream of the caller's firings."""

from __future__ import annotations

from collections.abc import AsyncIterator

from graphql_api.alerts.conditions import AlertDraft, AlertStatus
from graphql_api.alerts.service import AlertOutcome, alert_firings_page, alerts_page
from graphql_api.realtime.live_updates import alert_firing_updates
from resolvers.context import Info
from resolvers.pagination import Page, check_page_size, decode_int_cursor, page_from_rows, parse_id
from storage import models

ALERT_CURSOR = "alert"
FIRING_CURSOR = "alertFiring"


async def alerts(
    info: Info, statuses: list[AlertStatus] | None, first: int, after: str | None
) -> Page[models.Alert]:
    first = check_page_size(first, info.context.services.settings.max_page_size)
    rows = await alerts_page(
        info.context.services.sessions,
        info.context.user_id,
        statuses=statuses,
        after_id=decode_int_cursor(ALERT_CURSOR, after),
        limit=first + 1,
    )
    return page_from_rows(rows, first)


async def alert(info: Info, alert_id: str) -> models.Alert | None:
    rows = await alerts_page(
        info.context.services.sessions,
        info.context.user_id,
        statuses=None,
        alert_id=parse_id(alert_id),
        limit=1,
    )
    return rows[0] if rows else None


async def alert_firings(
    info: Info, alert_id: str | None, first: int, after: str | None
) -> Page[models.AlertFiring]:
    first = check_page_size(first, info.context.services.settings.max_page_size)
    rows = await alert_firings_page(
        info.context.services.sessions,
        info.context.user_id,
        alert_id=parse_id(alert_id, "alertId") if alert_id is not None else None,
        after_id=decode_int_cursor(FIRING_CURSOR, after),
        limit=first + 1,
    )
    return page_from_rows(rows, first)


async def create_alert(info: Info, draft: AlertDraft) -> AlertOutcome:
    return await info.context.services.alerts.create(info.context.user_id, draft)


async def pause_alert(info: Info, alert_id: str) -> AlertOutcome:
    return await info.context.services.alerts.pause(info.context.user_id, parse_id(alert_id))


async def resume_alert(info: Info, alert_id: str) -> AlertOutcome:
    return await info.context.services.alerts.resume(info.context.user_id, parse_id(alert_id))


async def delete_alert(info: Info, alert_id: str) -> AlertOutcome:
    return await info.context.services.alerts.delete(info.context.user_id, parse_id(alert_id))


async def firing_stream(info: Info, alert_id: str | None) -> AsyncIterator[models.AlertFiring]:
    """The caller's firings as they happen (of one alert, when ``alert_id`` is given)."""
    wanted = parse_id(alert_id, "alertId") if alert_id is not None else None
    services = info.context.services
    async for firing in alert_firing_updates(services.sessions, services.hub, info.context.user_id):
        if wanted is None or firing.alert_id == wanted:
            yield firing
