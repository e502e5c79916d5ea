"""Leader election for cluster-wide singletons (the paper matcher, the strategy engine).

On PostgreSQL a leader holds a session-level advisory lock on a dedicated
connection: if the process dies or its connection drops, PostgreSQL releases
the lock and a follower takes over on its next attempt (within
``retry_interval``). Each acquisition bumps a fencing token in
``leader_leases`` so stale leaders can be recognised in the data they write.

SQLite is a single-process database, so the one process is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import models

log = structlog.get_logger(__name__)

HOLDER = f"{socket.gethostname()}:{os.getpid()}"
RELEASE_TIMEOUT_SECONDS = 5.0
"""The longest giving up the lock may take; past it the connection is abandoned."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key per singleton name."""
    digest = hashlib.sha256(f"quantgraph:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """Run ``work`` only while this process is the cluster's leader for ``name``.

    Parameters:
        engine: the relational database (PostgreSQL locks; SQLite: always leader).
        name: the singleton's name, e.g. ``"matcher"``.
        retry_interval: how often a follower tries to take over (seconds).
        start_delay: seconds before the first attempt.
        patience: extra seconds to wait before each attempt, asked each time. Matcher
            shards use it to spread over processes: a process that already leads k
            shards waits k retry intervals longer, so a process leading fewer (a
            newcomer) takes the next free shard first.
        should_yield: asked every retry interval while leading; True gives the
            leadership up (the lock is released) so that another process can take it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        name: str,
        *,
        retry_interval: float = 1.0,
        start_delay: float = 0.0,
        patience: Callable[[], float] | None = None,
        should_yield: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._engine = engine
        self.name = name
        self._retry_interval = retry_interval
        self._start_delay = start_delay
        self._patience = patience
        self._should_yield = should_yield
        self.is_leader = False
        self.fencing_token = 0
        # The dedicated connection holding the advisory lock (None on SQLite).
        self._connection: AsyncConnection | None = None

    async def run(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Loop forever: acquire, run ``work`` until leadership is lost, repeat."""
        if self._start_delay:
            await asyncio.sleep(self._start_delay)
        while True:
            if self._patience is not None and (extra := self._patience()) > 0:
                await asyncio.sleep(extra)
            try:
                async with self._acquire() as acquired:
                    if acquired:
                        log.info("became leader", name=self.name, token=self.fencing_token)
                        try:
                            await self._run_while_leader(work)
                        finally:
                            self.is_leader = False
                            log.info("leadership ended", name=self.name)
            except Exception as error:
                # A database outage mid-election must not end the loop for good:
                # this process would never lead again, and nobody would notice.
                log.warning("leader election failed; retrying", name=self.name, error=str(error))
            await asyncio.sleep(self._retry_interval)

    async def _run_while_leader(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.is_leader = True
        worker = asyncio.create_task(work(), name=f"leader:{self.name}")
        watchdog = asyncio.create_task(self._watch(), name=f"leader-watch:{self.name}")
        try:
            done, _ = await asyncio.wait({worker, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is worker and not task.cancelled() and task.exception() is not None:
                    log.error("leader work failed", name=self.name, exc_info=task.exception())
        finally:
            for task in (worker, watchdog):
                task.cancel()
            await asyncio.gather(worker, watchdog, return_exceptions=True)

    async def _watch(self) -> None:
        """Returns when the lock connection is gone (and with it the lock)."""
        if self._connection is None:
            await asyncio.Event().wait()  # SQLite: leadership never lapses
        assert self._connection is not None
        while True:
            await asyncio.sleep(self._retry_interval)
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
                # a cancel that lands as the query answers, and this loop would then
                # outlive the cancel that should end it (a hang at shutdown).
                async with asyncio.timeout(5):
                    await self._connection.execute(text("SELECT 1"))
            except Exception as error:
                log.warning("leader lock connection lost", name=self.name, error=str(error))
                return
            try:
                if self._should_yield is not None and await self._should_yield():
                    log.info("leadership handed over to balance the load", name=self.name)
                    return
            except Exception as error:  # a failed check keeps the leadership
                log.warning("leadership balance check failed", name=self.name, error=str(error))

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[bool]:
        if self._engine.dialect.name != "postgresql":
            self._connection = None
            self.fencing_token = await self._record_lease()
            yield True
            return
        try:
            connection = await self._engine.connect()
        except Exception as error:
            log.warning("leader election cannot reach the database", error=str(error))
            yield False
            return
        try:
            got = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(self.name)}
            )
            await connection.commit()
            if not got:
                yield False
                return
            self._connection = connection
            self.fencing_token = await self._record_lease()
            try:
                yield True
            finally:
                self._connection = None
                # Bounded: a connection left mid-query by a cancelled watchdog must not
                # hang the hand-over; closing it releases the lock anyway.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                        await connection.execute(
                            text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(self.name)}
                        )
                        await connection.commit()
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                    await connection.close()

    async def _record_lease(self) -> int:
        async with self._engine.begin() as connection:
            row = (
                await connection.execute(
                    select(models.LeaderLease).where(models.LeaderLease.name == self.name)
                )
            ).first()
            token = (row.fencing_token if row else 0) + 1
            values = {
                "holder": HOLDER,
                "fencing_token": token,
                "expires_at": datetime.now(UTC) + timedelta(days=3650),
            }
            if row is None:
                await connection.execute(
                    insert(models.LeaderLease).values(name=self.name, **values)
                )
            else:
                await connection.execute(
                    update(models.LeaderLease)
                    .where(models.LeaderLease.name == self.name)
                    .values(**values)
                )
        return token


class Membership:
    """This process's membership of a group of processes (``group``), and their count.

    On PostgreSQL each member holds a *shared* advisory lock on the group's key on
    a connection of its own, for as long as it runs; ``pg_locks`` then counts the
    live members (a process that dies drops its connection and with it the lock).
    On SQLite there is one process: the count is 1.
    """

    def __init__(self, engine: AsyncEngine, group: str, *, retry_interval: float = 1.0) -> None:
        self._engine = engine
        self._key = lock_key(f"members:{group}")
        self._retry_interval = retry_interval

    async def run(self) -> None:
        """Hold the membership until cancelled (reconnecting after a failure)."""
        if self._engine.dialect.name != "postgresql":
            await asyncio.Event().wait()
        while True:
            try:
                async with self._engine.connect() as connection:
                    await connection.execute(
                        text("SELECT pg_advisory_lock_shared(:key)"), {"key": self._key}
                    )
                    await connection.commit()
                    while True:  # keep the connection (and the lock) alive
                        await asyncio.sleep(self._retry_interval)
                        async with asyncio.timeout(5):  # not wait_for: see _watch
                            await connection.execute(text("SELECT 1"))
            except Exception as error:
                log.warning("group membership lost; rejoining", error=str(error))
            await asyncio.sleep(self._retry_interval)

    async def count(self) -> int:
        """Live members of the group (at least 1: this process is one)."""
        if self._engine.dialect.name != "postgresql":
            return 1
        key = self._key & 0xFFFFFFFFFFFFFFFF
        async with self._engine.connect() as connection:
            found = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND mode = 'ShareLock' AND granted "
                    "AND classid = :high AND objid = :low AND objsubid = 1"
                ),
                {"high": key >> 32, "low": key & 0xFFFFFFFF},
            )
        return max(1, int(found or 0))
