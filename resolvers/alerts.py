"""Alert resolvers: the caller's alerts and firings (paged), the alert mutations, and the
live stream of the caller's firings."""

from __future__ import annotations

from collections.abc import AsyncIterator

from graphql_api.alerts.conditions import AlertDraft, AlertStatus
from graphql_api.alerts.service import (
    ALERT_LIST,
    FIRING_LIST,
    AlertOutcome,
    alert_firings_query,
    alerts_query,
    user_alert,
)
from graphql_api.realtime.live_updates import alert_firing_updates
from resolvers.context import Info
from resolvers.pagination import Page, Paging, parse_id, read_page
from storage import models

ALERT_CURSOR = "alert"
FIRING_CURSOR = "alertFiring"


async def alerts(
    info: Info, statuses: list[AlertStatus] | None, paging: Paging
) -> Page[models.Alert]:
    window = paging.window(ALERT_CURSOR, info.context.services.settings.max_page_size)
    query = alerts_query(info.context.user_id, statuses=statuses)
    return await read_page(info.context.services.sessions, query, ALERT_LIST, window)


async def alert(info: Info, alert_id: str) -> models.Alert | None:
    services = info.context.services
    return await user_alert(services.sessions, info.context.user_id, parse_id(alert_id))


async def alert_firings(
    info: Info, alert_id: str | None, paging: Paging
) -> Page[models.AlertFiring]:
    window = paging.window(FIRING_CURSOR, info.context.services.settings.max_page_size)
    wanted = parse_id(alert_id, "alertId") if alert_id is not None else None
    query = alert_firings_query(info.context.user_id, alert_id=wanted)
    return await read_page(info.context.services.sessions, query, FIRING_LIST, window)


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
