"""Bring a database to the latest schema with Alembic, from code.

Used by ``quantgraph migrate`` and, when enabled, at server start. Both the
embedded SQLite default and PostgreSQL go through the same migrations, so the
two always end in the same schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Run pending migrations on an existing engine, one process at a time.

    Several processes may start at once on one database (``serve --workers N``).
    On PostgreSQL they queue on an advisory lock (``migrations/env.py``); on
    SQLite on a lock file beside the database (:func:`sqlite_migration_lock`).
    """

    def _upgrade(connection: object) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with sqlite_migration_lock(engine), engine.begin() as connection:
        await connection.run_sync(_upgrade)


def migration_lock_path(engine: AsyncEngine) -> Path | None:
    """Where the lock file of a SQLite database file is: ``<database>-migrate.lock``;
    None for PostgreSQL and for in-memory or URI-named SQLite databases."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(f"{database}-migrate.lock")


@contextlib.asynccontextmanager
async def sqlite_migration_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold an exclusive ``flock`` on the SQLite database's lock file meanwhile.

    SQLite's own locking does not serialise migrations: Alembic runs SQLite DDL
    outside a transaction, so two processes starting on a fresh file both see no
    tables and the second fails on ``CREATE TABLE`` (``table … already exists``),
    which stops that worker's start-up. The lock is a separate file, not the
    database: closing a descriptor of the database file would drop the process's
    own SQLite locks on it. It is released when the descriptor closes, also when
    the process dies. Waiting for it runs in a thread, off the event loop.
    """
    path = migration_lock_path(engine)
    if path is None:
        yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
