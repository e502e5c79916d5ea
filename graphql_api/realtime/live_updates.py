"""A user's live order, signal and alert-firing updates that survive bus and database outages.

Events on the bus carry ids; the rows are loaded fresh, so a subscriber sees
the object as it is now. Two outages must not end a subscription or lose an
update:

- the database: loading fails (breaker open, connection lost). The ids keep
  arriving and are collected; loading is retried with backoff until the store
  answers, and then everything collected is delivered (catch-up).
- the bus: events published while this process was not listening are gone
  from pub/sub. The hub marks each reconnect with :data:`~graphql_api.realtime.hub.RESYNC`,
  and the stream then reloads what changed since it last delivered.

Delivery is at least once underneath (the event relay may publish an event
twice, and catch-up overlaps the live stream), so each stream drops what it has
already shown: an order at a version not newer than the last one shown (an
event that names no version always shows the current row), a signal or a
firing id already shown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, select

from graphql_api.platform.resilience import as_service_unavailable
from graphql_api.realtime.channels import alert_channel, order_channel, signal_channel
from graphql_api.realtime.events import decode_id_event
from graphql_api.realtime.hub import RESYNC, Hub, Mailbox
from storage import models
from storage.engine import SessionFactory

T = TypeVar("T")

# Rows changed this long before the last one delivered are reloaded on catch-up:
# covers clock skew between server processes (duplicates are dropped anyway).
CATCH_UP_MARGIN = timedelta(seconds=5)
CATCH_UP_LIMIT = 1000
MIN_RETRY = 0.1
MAX_RETRY = 2.0


class _Pending:
    """Ids announced but not yet delivered, and whether a catch-up is due.

    Per id, the highest version announced, or None when an event named no
    version (then the current row is shown whatever was shown before).
    """

    def __init__(self) -> None:
        self.ids: dict[int, int | None] = {}
        self.catch_up = False

    def absorb(self, message: str) -> None:
        if message == RESYNC:
            self.catch_up = True
            return
        event = decode_id_event(message)
        object_id = int(event["id"])
        version = event.get("version")
        if object_id in self.ids:
            known = self.ids[object_id]
            version = None if known is None or version is None else max(known, int(version))
        self.ids[object_id] = None if version is None else int(version)

    def absorb_waiting(self, box: Mailbox) -> None:
        while (waiting := box.get_nowait()) is not None:
            self.absorb(waiting.message)


async def _load_when_available(
    box: Mailbox, pending: _Pending, load: Callable[[], Awaitable[T]]
) -> T:
    """``load()``, retried with backoff while the store is unavailable; events that
    arrive meanwhile are collected into ``pending`` (so the mailbox never overflows)."""
    delay = MIN_RETRY
    while True:
        try:
            return await load()
        except Exception as error:
            if as_service_unavailable(error) is None:
                raise
        pending.absorb_waiting(box)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                while True:
                    pending.absorb((await box.get()).message)
        delay = min(delay * 2, MAX_RETRY)


async def order_updates(
    sessions: SessionFactory, hub: Hub, user_id: int
) -> AsyncIterator[models.Order]:
    """``user_id``'s order changes, in the order they were announced, each version once."""
    shown: dict[int, int] = {}  # order id -> latest version delivered
    since = datetime.now(UTC)
    pending = _Pending()

    async def load() -> list[tuple[models.Order, bool]]:
        """(row, shown even at a version already shown) pairs."""
        ids, catch_up = dict(pending.ids), pending.catch_up
        order = models.Order
        async with sessions() as session:
            rows: list[tuple[models.Order, bool]] = []
            if ids:
                found = await session.scalars(
                    select(order).where(order.id.in_(ids), order.user_id == user_id)
                )
                by_id = {row.id: row for row in found}
                rows = [(by_id[i], ids[i] is None) for i in ids if i in by_id]
            if catch_up:
                changed = await session.scalars(
                    select(order)
                    .where(order.user_id == user_id, order.updated_at >= since - CATCH_UP_MARGIN)
                    .order_by(order.updated_at, order.id)
                    .limit(CATCH_UP_LIMIT)
                )
                rows.extend((row, False) for row in changed)
        pending.ids.clear()
        pending.catch_up = False
        return rows

    async with hub.subscribe([order_channel(user_id)], conflate=False, resync=True) as box:
        while True:
            pending.absorb((await box.get()).message)
            for row, forced in await _load_when_available(box, pending, load):
                if forced or row.version > shown.get(row.id, -1):
                    shown[row.id] = row.version
                    since = max(since, row.updated_at)
                    yield row


def signal_updates(
    sessions: SessionFactory, hub: Hub, user_id: int
) -> AsyncIterator[models.Signal]:
    """``user_id``'s new signals, in the order they were announced, each once."""
    owned = select(models.Strategy.id).where(models.Strategy.user_id == user_id)
    return _new_rows(
        sessions, hub, signal_channel(user_id), models.Signal, models.Signal.strategy_id.in_(owned)
    )


def alert_firing_updates(
    sessions: SessionFactory, hub: Hub, user_id: int
) -> AsyncIterator[models.AlertFiring]:
    """``user_id``'s new alert firings, in the order they were announced, each once."""
    firing = models.AlertFiring
    return _new_rows(sessions, hub, alert_channel(user_id), firing, firing.user_id == user_id)


NewRow = TypeVar("NewRow", models.Signal, models.AlertFiring)


async def _new_rows(
    sessions: SessionFactory,
    hub: Hub,
    channel: str,
    model: type[NewRow],
    owned: ColumnElement[bool],
) -> AsyncIterator[NewRow]:
    """Rows that are only ever added (signals, firings), announced by id on ``channel``:
    each ``owned`` one once, in announcement order; after a bus reconnect, the ones
    with ids past the last shown (or created since the stream began)."""
    shown: set[int] = set()
    last_id: int | None = None
    since = datetime.now(UTC)
    pending = _Pending()

    async def load() -> list[NewRow]:
        ids, catch_up = list(pending.ids), pending.catch_up
        async with sessions() as session:
            rows: list[NewRow] = []
            if ids:
                found = await session.scalars(select(model).where(model.id.in_(ids), owned))
                by_id = {row.id: row for row in found}
                rows = [by_id[i] for i in ids if i in by_id]
            if catch_up:
                newer = (
                    model.id > last_id
                    if last_id is not None
                    else model.created_at >= since - CATCH_UP_MARGIN
                )
                rows.extend(
                    await session.scalars(
                        select(model).where(owned, newer).order_by(model.id).limit(CATCH_UP_LIMIT)
                    )
                )
        pending.ids.clear()
        pending.catch_up = False
        return rows

    async with hub.subscribe([channel], conflate=False, resync=True) as box:
        while True:
            pending.absorb((await box.get()).message)
            for row in await _load_when_available(box, pending, load):
                if row.id not in shown:
                    shown.add(row.id)
                    last_id = max(last_id or 0, row.id)
                    yield row
