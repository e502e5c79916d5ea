"""Migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine, create_session_factory
from storage.migrate import alembic_config
from storage.models import Base
from storage.repositories import users as user_repo
from storage.types import UtcDateTime


async def test_migrated_database_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:

            def diff(sync_connection: Any) -> list[Any]:
                context = MigrationContext.configure(sync_connection)
                return list(compare_metadata(context, Base.metadata))

            differences = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_usernames_that_differ_only_in_case_are_kept_apart(tmp_path: Path) -> None:
    """0004 makes usernames case-insensitive; earlier databases may hold ``demo`` and
    ``Demo``: the oldest keeps the name, the others get ``<name>#<id>``."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        # given: a database at 0002 with three spellings of one name
        await _upgrade(engine, "0002")
        users = sa.table(
            "users",
            sa.column("username", sa.String),
            sa.column("role", sa.String),
            sa.column("created_at", UtcDateTime()),
        )
        now = datetime.now(UTC)
        async with engine.begin() as connection:
            await connection.execute(
                users.insert(),
                [
                    {"username": name, "role": "TRADER", "created_at": now}
                    for name in ("demo", "Demo", "bob", "DEMO")
                ],
            )
        # when
        await _upgrade(engine, "head")
        # then
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.text("SELECT id, username, username_key FROM users ORDER BY id")
                )
            ).all()
        assert [tuple(row) for row in rows] == [
            (1, "demo", "demo"),
            (2, "Demo#2", "demo#2"),
            (3, "bob", "bob"),
            (4, "DEMO#4", "demo#4"),
        ]
        async with create_session_factory(engine)() as session:
            found = await user_repo.user_by_username(session, "DeMo")
            assert found is not None and found.id == 1
    finally:
        await engine.dispose()


async def _upgrade(engine: AsyncEngine, revision: str) -> None:
    def upgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)
