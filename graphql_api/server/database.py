"""Opening the database, the one way every command and the server do it.

An engine for ``DATABASE_URL``, its session factory, the schema brought to
the latest migration first (unless the caller says otherwise), and the
engine's connections released however the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.platform.settings import Settings
from storage.engine import SessionFactory, create_engine, create_session_factory
from storage.migrate import upgrade_to_head

__all__ = ["Database", "open_database"]


@dataclass(frozen=True, slots=True)
class Database:
    engine: AsyncEngine
    sessions: SessionFactory


@contextlib.asynccontextmanager
async def open_database(
    settings: Settings, *, migrate: bool = True, pool_size: int | None = None
) -> AsyncIterator[Database]:
    """``migrate``: upgrade the schema before use (the server follows ``AUTO_MIGRATE``;
    commands always do). ``pool_size``: connections kept open (the engine's default
    when None; a server sizes it for its load, a command needs few)."""
    if pool_size is None:
        engine = create_engine(settings.database_url)
    else:
        engine = create_engine(settings.database_url, pool_size=pool_size)
    try:
        if migrate:
            await upgrade_to_head(engine)
        yield Database(engine, create_session_factory(engine))
    finally:
        await engine.dispose()
