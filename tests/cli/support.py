"""Running the real ``quantgraph`` command in a subprocess, as a user or a script would."""

from __future__ import annotations

import os
import subprocess
import sys

from storage.engine import create_engine, create_session_factory
from storage.models import DailyBar
from storage.repositories import symbols as symbol_repo

COMMAND = [sys.executable, "-m", "graphql_api.server.cli"]


def quantgraph(
    *args: str, database_url: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        env={**environment(database_url), **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def environment(database_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url}


async def daily_bars(database_url: str, code: str) -> list[DailyBar]:
    """What the backtests and ``klineSeries`` read: the repository, not raw SQL."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return await symbol_repo.daily_bars(
                session, code, start=None, end=None, limit=1_000_000
            )
    finally:
        await engine.dispose()
