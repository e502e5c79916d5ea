"""Engine and session factory for the relational database.

The URL decides the backend: ``sqlite+aiosqlite:///…`` for the embedded
default, ``postgresql+asyncpg://…`` at scale. Sessions are short-lived: one per
service call or loader batch, never one per WebSocket connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.sqlite_connections import sqlite_creator
from storage.sqlite_functions import register_sqlite_functions

SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, echo=echo, async_creator=sqlite_creator(parsed, timeout=30)
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    # No pre-ping: it costs a round trip per checkout. A connection that died
    # fails its statement, is discarded by the pool, and the request errors once.
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while the tick writer commits; foreign keys are
    # off by default in SQLite and we rely on them for integrity.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # Exact decimal addition for the reservation increments (decimals are text here).
    register_sqlite_functions(dbapi_connection)


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
