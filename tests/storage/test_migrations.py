"""Migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.engine import create_engine
from storage.models import Base


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
