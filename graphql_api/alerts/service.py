"""Alerts: create, pause, resume, delete — each one transaction — and the owner's reads.

An alert belongs to one user; someone else's is NOT_FOUND, exactly like one
that does not exist. Refusals are user errors with nothing changed: the
inputs (:func:`~graphql_api.alerts.conditions.check_draft`), an unknown symbol
(``UNKNOWN_SYMBOL``), and more than ``max_alerts`` alerts that can still fire
(ACTIVE or PAUSED) per user (``OUT_OF_RANGE``). Pausing an alert that is not
ACTIVE, or resuming one that is not PAUSED, is ``NOT_ALLOWED``; a FIRED or
EXPIRED alert stays as it is (create a new one).

Every change stages an id event on
:data:`~graphql_api.realtime.channels.ALERTS_CONTROL_CHANNEL` in its
transaction, which wakes the alert engine (it also polls, so a lost event only
delays the change by one poll). One user's changes are serialised (a lock per
user in this process, the user's row on PostgreSQL across processes), so the
limit is checked against committed state.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.alerts.conditions import AlertDraft, AlertStatus, check_draft
from graphql_api.market.symbols import SymbolCatalog
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.realtime.channels import ALERTS_CONTROL_CHANNEL
from graphql_api.realtime.events import encode_id_event
from graphql_api.realtime.outbox import EventOutbox
from storage import models
from storage.engine import SessionFactory
from storage.repositories.keyset import ListOrder

__all__ = ["AlertOutcome", "AlertService", "alert_firings_query", "alerts_query", "user_alert"]

_CAN_FIRE = (AlertStatus.ACTIVE.value, AlertStatus.PAUSED.value)


@dataclass(frozen=True, slots=True)
class AlertOutcome:
    """The alert after the change (before it, for a delete); None with errors."""

    alert: models.Alert | None
    errors: list[UserError]


class AlertService:
    """Changes to alerts (see the module docstring for the rules).

    Parameters:
        sessions: the relational database.
        catalog: the symbols that exist.
        outbox: where control events are staged, in each change's transaction.
        max_alerts: alerts (ACTIVE or PAUSED) one user may have.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        catalog: SymbolCatalog,
        outbox: EventOutbox,
        *,
        max_alerts: int,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._outbox = outbox
        self.max_alerts = max_alerts
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def create(self, user_id: int, draft: AlertDraft) -> AlertOutcome:
        now = datetime.now(UTC)
        errors = check_draft(draft, now)
        symbol = draft.symbol.upper()
        if symbol not in await self._catalog.get_many([symbol]):
            errors.insert(
                0, UserError("symbol", ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")
            )
        if errors:
            return AlertOutcome(None, errors)
        async with self._user_locks[user_id], self._sessions() as session:
            await _lock_owner(session, user_id)
            count = await session.scalar(
                select(func.count())
                .select_from(models.Alert)
                .where(models.Alert.user_id == user_id, models.Alert.status.in_(_CAN_FIRE))
            )
            if int(count or 0) >= self.max_alerts:
                return _refused(
                    UserError(
                        "symbol",
                        ErrorCode.OUT_OF_RANGE,
                        f"you have {self.max_alerts} active or paused alerts, the most "
                        "allowed; delete one first",
                    )
                )
            row = models.Alert(
                user_id=user_id,
                symbol_code=symbol,
                kind=draft.kind.value,
                mode=draft.mode.value,
                status=AlertStatus.ACTIVE.value,
                level=draft.level,
                percent=draft.percent,
                window_seconds=draft.window_seconds,
                interval=draft.interval.value if draft.interval else None,
                indicator=draft.indicator.value if draft.indicator else None,
                period=draft.period,
                note=draft.note,
                expires_at=draft.expires_at,
                fire_count=0,
                last_fired_at=None,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            self._announce(session, row.id, "created")
            await session.commit()
        return AlertOutcome(row, [])

    async def pause(self, user_id: int, alert_id: int) -> AlertOutcome:
        return await self._move(user_id, alert_id, AlertStatus.ACTIVE, AlertStatus.PAUSED)

    async def resume(self, user_id: int, alert_id: int) -> AlertOutcome:
        return await self._move(user_id, alert_id, AlertStatus.PAUSED, AlertStatus.ACTIVE)

    async def delete(self, user_id: int, alert_id: int) -> AlertOutcome:
        async with self._user_locks[user_id], self._sessions() as session:
            row = await _owned(session, user_id, alert_id)
            if row is None:
                return _not_found()
            # Its firings go with it (ON DELETE CASCADE).
            await session.execute(delete(models.Alert).where(models.Alert.id == alert_id))
            self._announce(session, alert_id, "deleted")
            await session.commit()
        return AlertOutcome(row, [])

    async def _move(
        self, user_id: int, alert_id: int, source: AlertStatus, target: AlertStatus
    ) -> AlertOutcome:
        async with self._user_locks[user_id], self._sessions() as session:
            row = await _owned(session, user_id, alert_id)
            if row is None:
                return _not_found()
            if row.status != source.value:
                return _refused(
                    UserError(
                        "id",
                        ErrorCode.NOT_ALLOWED,
                        f"the alert is {row.status}; only a {source.value} alert can become "
                        f"{target.value}",
                    )
                )
            now = datetime.now(UTC)
            if (
                target is AlertStatus.ACTIVE
                and row.expires_at is not None
                and row.expires_at <= now
            ):
                row.status = AlertStatus.EXPIRED.value
            else:
                row.status = target.value
            row.updated_at = now
            self._announce(session, alert_id, row.status.lower())
            await session.commit()
        return AlertOutcome(row, [])

    def _announce(self, session: AsyncSession, alert_id: int, what: str) -> None:
        self._outbox.stage(
            session, ALERTS_CONTROL_CHANNEL, encode_id_event("alert", alert_id, change=what)
        )


async def _lock_owner(session: AsyncSession, user_id: int) -> None:
    """Hold the user's row until the transaction ends (PostgreSQL; a no-op on SQLite,
    whose one server process serialises with its own lock)."""
    await session.execute(select(models.User.id).where(models.User.id == user_id).with_for_update())


async def _owned(session: AsyncSession, user_id: int, alert_id: int) -> models.Alert | None:
    row = await session.get(models.Alert, alert_id, populate_existing=True)
    return row if row is not None and row.user_id == user_id else None


# Alerts and firings are listed newest first, keyset on the id.
ALERT_LIST = ListOrder(models.Alert.id, descending=True)
FIRING_LIST = ListOrder(models.AlertFiring.id, descending=True)


def alerts_query(
    user_id: int, *, statuses: list[AlertStatus] | None, alert_id: int | None = None
) -> Select[models.Alert]:
    """The user's alerts (of these statuses; the one ``alert_id``), for a keyset page."""
    alert = models.Alert
    query = select(alert).where(alert.user_id == user_id)
    if alert_id is not None:
        query = query.where(alert.id == alert_id)
    if statuses:
        query = query.where(alert.status.in_([status.value for status in statuses]))
    return query


async def user_alert(sessions: SessionFactory, user_id: int, alert_id: int) -> models.Alert | None:
    async with sessions() as session:
        return await session.scalar(alerts_query(user_id, statuses=None, alert_id=alert_id))


def alert_firings_query(user_id: int, *, alert_id: int | None) -> Select[models.AlertFiring]:
    """The user's firings, optionally of one alert, for a keyset page."""
    firing = models.AlertFiring
    query = select(firing).where(firing.user_id == user_id)
    if alert_id is not None:
        query = query.where(firing.alert_id == alert_id)
    return query


def _refused(error: UserError) -> AlertOutcome:
    return AlertOutcome(None, [error])


def _not_found() -> AlertOutcome:
    return _refused(UserError("id", ErrorCode.NOT_FOUND, "alert not found"))
