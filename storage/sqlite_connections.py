"""SQLite connections whose shutdown cannot hang.

Two things can hold a shutdown (a server's, or a test's teardown) for the whole
30 s busy timeout, or for ever. Both show when a background task is cancelled
mid-transaction, which is what shutdown does.

**A closed connection that keeps the write lock.** A task cancelled after its
INSERT and before its COMMIT leaves SQLAlchemy nothing to do but close the
connection (its rollback on return to the pool is cancelled too). When a
statement of that connection is still active (a cursor not read to the end),
``sqlite3_close_v2`` does not close: the connection becomes a "zombie" that
keeps its transaction, and with it the write lock, until the statement is
finalized, which is when the garbage collector gets to the cursor. Every other
writer meanwhile waits out its busy timeout. :class:`RollbackOnClose` rolls the
transaction back first, so closing always gives the lock up at once.

**A connection stopped twice.** SQLAlchemy ends a connection whose task was
cancelled by closing it gracefully in a shielded task and, when that wait is
cancelled too, by stopping it at once (aiosqlite's ``stop()``). aiosqlite 0.22
then has two stops queued for one worker thread: the thread ends at the first,
and the graceful ``close()``, which stops again in its ``finally``, awaits the
second forever. That task never ends, so neither does the event loop's shutdown.

Here a connection stops once: a second ``stop()`` returns the first one's
future (already answered, or answered when the thread gets to it).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import URL

ITER_CHUNK_SIZE = 64  # aiosqlite.connect's default


class RollbackOnClose(sqlite3.Connection):
    """A sqlite3 connection that ends its transaction before it closes (see above)."""

    def close(self) -> None:
        try:
            if self.in_transaction:
                self.rollback()
        except sqlite3.ProgrammingError:  # closed already; closing again does nothing
            pass
        finally:
            super().close()


class SingleStopConnection(aiosqlite.Connection):
    """An aiosqlite connection whose worker thread is told to stop only once."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._stop_requested = False
        self._stopped: asyncio.Future[Any] | None = None

    def stop(self) -> asyncio.Future[Any] | None:
        if not self._stop_requested:
            self._stop_requested = True
            self._stopped = super().stop()
        return self._stopped


def sqlite_creator(url: URL, **connect_args: Any) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """An ``async_creator`` for :func:`~sqlalchemy.ext.asyncio.create_async_engine`
    that opens :class:`SingleStopConnection`\\s on :class:`RollbackOnClose`
    connections, with the arguments SQLAlchemy's aiosqlite dialect would pass
    (path, ``check_same_thread``, URL query) plus ``connect_args``."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(url)
    kwargs.update(connect_args)
    kwargs["factory"] = RollbackOnClose
    database = args[0]

    async def create() -> aiosqlite.Connection:
        connection = SingleStopConnection(
            lambda: sqlite3.connect(database, **kwargs), ITER_CHUNK_SIZE
        )
        # As SQLAlchemy does for the threads it starts: never keep the process alive.
        connection._thread.daemon = True
        return await connection

    return create
