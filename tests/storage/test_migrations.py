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

from graphql_api.market.sessions import session_from_json
from storage.engine import create_engine, create_session_factory
from storage.migrate import alembic_config
from storage.models import Base, Symbol
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


async def test_0013_turns_the_close_minute_into_a_session_with_the_same_meaning(
    database_url: str,
) -> None:
    """Down to 0012 the demo's sessions become close minutes again (15:00 Shanghai is
    07:00 UTC); up again each minute becomes a 24-hour UTC window closing then."""
    engine = create_engine(database_url)
    try:
        # given a database at 0012 (with daily bars pointing at its symbols), whose
        # symbols hold only their close minute (UTC)
        await _downgrade(engine, "0012")
        async with engine.connect() as connection:
            result = await connection.execute(
                sa.text("SELECT code, session_close_utc_minute FROM symbols")
            )
            minutes = {str(code): int(minute) for code, minute in result.all()}
        assert (minutes["600519.SH"], minutes["BTCUSDT"]) == (7 * 60, 0)
        # when it is upgraded
        await _upgrade(engine, "head")
        # then each symbol trades around the clock with its trading day ending then
        async with create_session_factory(engine)() as session:
            rows = {row.code: row for row in await session.scalars(sa.select(Symbol))}
        every_day = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
        assert rows["600519.SH"].trading_session == {
            "timezone": "UTC",
            "windows": [{"days": every_day, "open": "07:00", "close": "07:00"}],
        }
        assert rows["BTCUSDT"].trading_session == {
            "timezone": "UTC",
            "windows": [{"days": every_day, "open": "00:00", "close": "24:00"}],
        }
        assert {row.off_session_orders for row in rows.values()} == {"REFUSE"}
        moutai = session_from_json(rows["600519.SH"].trading_session)
        placed = datetime(2026, 12, 5, 6, 59, tzinfo=UTC)  # a Saturday: open all the same
        assert moutai.is_open(placed)
        assert moutai.day_close(placed) == datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
    finally:
        await engine.dispose()


async def _downgrade(engine: AsyncEngine, revision: str) -> None:
    def downgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(downgrade)
