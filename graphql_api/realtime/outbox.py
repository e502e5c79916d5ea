"""Realtime events that survive a bus outage: a transactional event outbox and its relay.

A service that changes state stages the event announcing the change in the
*same* transaction (:meth:`EventOutbox.stage`). Once that transaction commits,
the answer to the caller is the truth — the order is placed, the session is
revoked — whatever the bus (Redis) is doing at that moment. The relay
(:meth:`EventOutbox.run`, one task per server process) publishes staged rows
to the bus in id order and deletes them once the bus took them; while the bus
is down it retries with exponential backoff, and the backlog goes out as soon
as the bus is back.

Who publishes a row, with several processes:

- PostgreSQL: every process relays; a batch is claimed with
  ``SELECT … FOR UPDATE SKIP LOCKED`` in the transaction that deletes it, so
  each row is published by exactly one relay.
- SQLite: one server process per database (see :mod:`graphql_api.platform.leader`), so
  its relay is the only one; it reads, publishes, then deletes in a second
  transaction (SQLite cannot upgrade a read snapshot to a write after another
  writer committed, and must not hold its write lock while the bus answers).

Delivery is at least once: a process that dies between publishing and
committing the delete leaves its batch, which is published again. Consumers
are idempotent: ``orderUpdates`` drops an (order, version) it has shown,
``signals`` a signal id it has shown, the matcher fences fills by order
version, and revocations and strategy-control events are idempotent.

Not to be confused with :class:`graphql_api.realtime.multiplex.Outbox`, a WebSocket
connection's in-memory send queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from sqlalchemy import Table, delete, event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.platform.resilience import with_timeout
from graphql_api.realtime.hub import Hub
from storage import models
from storage.engine import SessionFactory

log = structlog.get_logger(__name__)

_STAGED = "quantgraph_event_outbox"


class EventOutbox:
    """Stages events in callers' transactions and relays them to the bus.

    Parameters:
        sessions: the relational database holding ``event_outbox``.
        hub: the bus the events go to.
        batch_size: rows published per round trip.
        poll_interval: seconds between looks at the table when nothing wakes the
            relay (rows staged by another process, or left by a dead one).
        min_backoff / max_backoff: retry delays in seconds while the bus or the
            database fails (doubling in between).
        publish_timeout: longest a publish may take before it counts as failed.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        hub: Hub,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
        publish_timeout: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._publish_timeout = publish_timeout
        self._wakeup = asyncio.Event()
        self.relayed = 0  # events handed to the bus by this process
        self.failed_passes = 0  # relay passes that failed (bus or database down)

    def stage(self, session: AsyncSession, channel: str, message: str) -> None:
        """Add ``message`` for ``channel`` to ``session``'s transaction.

        It is published after that transaction commits, and never if it rolls
        back; the relay is woken on commit, so in the common case the event is
        on the bus a moment later.
        """
        session.add(
            models.OutboxEvent(channel=channel, payload=message, created_at=datetime.now(UTC))
        )
        self._wake_on_commit(session)

    async def stage_many(self, session: AsyncSession, messages: Sequence[tuple[str, str]]) -> None:
        """:meth:`stage` for many ``(channel, message)`` pairs in one Core statement.

        For hot paths (the matcher's fill batches): no ORM object per event.
        The rows get ascending ids in the given order, so the relay publishes
        them in that order.
        """
        if not messages:
            return
        now = datetime.now(UTC)
        await session.execute(
            insert(cast(Table, models.OutboxEvent.__table__)),
            [
                {"channel": channel, "payload": message, "created_at": now}
                for channel, message in messages
            ],
        )
        self._wake_on_commit(session)

    def _wake_on_commit(self, session: AsyncSession) -> None:
        sync_session = session.sync_session
        if not sync_session.info.get(_STAGED):
            sync_session.info[_STAGED] = True
            event.listen(sync_session, "after_commit", self._committed)

    def wake(self) -> None:
        self._wakeup.set()

    def _committed(self, _session: Any) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Relay until cancelled; failures are retried with backoff, never fatal."""
        backoff = self._min_backoff
        while True:
            self._wakeup.clear()
            try:
                relayed = await self.relay_once()
            except Exception as error:
                self.failed_passes += 1
                if backoff == self._min_backoff:
                    log.warning("event relay failed; retrying", error=repr(error))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if backoff != self._min_backoff:
                log.info("event relay resumed", relayed=relayed)
            backoff = self._min_backoff
            if relayed < self._batch_size:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can
                # swallow the cancel that ends this loop at shutdown.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_interval):
                        await self._wakeup.wait()

    async def relay_once(self) -> int:
        """Publish (and delete) one batch of staged events; how many."""
        async with self._sessions() as session:
            claims = session.get_bind().dialect.name == "postgresql"
            row = models.OutboxEvent
            query = select(row.id, row.channel, row.payload).order_by(row.id)
            query = query.limit(self._batch_size)
            if claims:
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            if not rows:
                return 0
            if not claims:
                await session.rollback()  # end the read before waiting on the bus
            await self._publish([(row.channel, row.payload) for row in rows])
            await session.execute(
                delete(models.OutboxEvent).where(models.OutboxEvent.id.in_([r.id for r in rows]))
            )
            await session.commit()
        self.relayed += len(rows)
        return len(rows)

    async def _publish(self, messages: Sequence[tuple[str, str]]) -> None:
        await with_timeout(
            self._hub.publish_many(messages), self._publish_timeout, service="broadcast"
        )

    async def backlog(self) -> int:
        """Events staged and not yet relayed (for metrics and tests)."""
        async with self._sessions() as session:
            count = await session.scalar(select(func.count()).select_from(models.OutboxEvent))
            return int(count or 0)
