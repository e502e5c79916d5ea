"""SQLite connections whose shutdown cannot hang: aiosqlite with a stop that runs once.

SQLAlchemy ends a connection whose task was cancelled by closing it gracefully
in a shielded task and, when that wait is cancelled too, by stopping it at once
(aiosqlite's ``stop()``). aiosqlite 0.22 then has two stops queued for one
worker thread: the thread ends at the first, and the graceful ``close()``, which
stops again in its ``finally``, awaits the second forever. That task never ends,
so neither does the event loop's shutdown (the server's, or a test's). It shows
when a background task is cancelled while its statement waits for SQLite's
write lock, which is what shutdown does.

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
    that opens :class:`SingleStopConnection`\\s with the arguments SQLAlchemy's
    aiosqlite dialect would pass (path, ``check_same_thread``, URL query) plus
    ``connect_args``."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(url)
    kwargs.update(connect_args)
    database = args[0]

    async def create() -> aiosqlite.Connection:
        connection = SingleStopConnection(
            lambda: sqlite3.connect(database, **kwargs), ITER_CHUNK_SIZE
        )
        # As SQLAlchemy does for the threads it starts: never keep the process alive.
        connection._thread.daemon = True
        return await connection

    return create
