"""The ``quantgraph`` command line, run as a user would run it."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from graphql_api.auth import Role
from storage.engine import create_engine, create_session_factory
from storage.repositories import users as user_repo
from storage.timeseries.sql import SqlTimeSeriesStore
from tests.cli.support import COMMAND, quantgraph
from tests.conftest import http_client, make_settings, running_app, sql_database, user_token
from tests.support.graphql import error_codes, post

INGEST = (
    'mutation { ingestTicks(ticks: [{symbol: "BTCUSDT", time: "2026-01-01T00:00:00Z", '
    'last: "1.00"}]) { accepted } }'
)


@pytest.fixture
async def sqlite_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with sql_database(request, "sqlite") as url:
        yield url


COMMANDS = (
    "serve",
    "migrate",
    "seed",
    "import-bars",
    "backfill-bars",
    "import-symbols",
    "import-ticks",
    "rebuild-bars",
    "create-user",
    "set-role",
    "remove-user",
    "export-schema",
)


def test_help_lists_every_command_with_a_one_line_description() -> None:
    result = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, check=True)
    listed = dict(re.findall(r"^    ([a-z-]+) +(\S.*)$", result.stdout, re.MULTILINE))
    assert sorted(listed) == sorted(COMMANDS), result.stdout
    assert listed["import-bars"] == "import daily bars of one symbol from CSV"
    assert listed["create-user"] == "create a user with a role"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_own_help(command: str) -> None:
    result = subprocess.run(
        [*COMMAND, command, "--help"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith(f"usage: quantgraph {command}")


async def test_import_ticks_writes_valid_rows_and_reports_rejected_ones(
    database_url: str, tmp_path: Path
) -> None:
    # given a CSV with good rows and rows that are wrong in different ways
    csv_file = tmp_path / "ticks.csv"
    csv_file.write_text(
        "symbol,time,last,bid,ask,volume\n"
        "600519.SH,2026-03-02T01:30:00Z,1500.00,1499.99,1500.01,100\n"
        "600519.SH,2026-03-02T09:30:01+08:00,1500.50,,,200\n"
        "NOPE.SH,2026-03-02T01:30:02Z,1.00,,,1\n"
        "600519.SH,not-a-time,1500.00,,,1\n"
        "600519.SH,2026-03-02T01:30:03Z,1500.001,,,1\n"
    )
    # when importing it
    result = quantgraph("import-ticks", str(csv_file), database_url=database_url)
    # then the summary counts rows, the exit code says some were rejected
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "rows read 5, written 2, rejected 3",
        "  rejected 1: unknown symbol 'NOPE.SH' (line 4)",
        "  rejected 1: time is not ISO 8601 (line 5)",
        "    e.g. line 5: time 'not-a-time' is not ISO 8601",
        "  rejected 1: last is not on the tick grid (line 6)",
        "    e.g. line 6: last 1500.001 is not a multiple of the tick size 0.01",
    ]
    assert result.stderr == ""
    engine = create_engine(database_url)
    try:
        ticks = await SqlTimeSeriesStore(engine).ticks("600519.SH", None, None, 10)
    finally:
        await engine.dispose()
    assert [t.last for t in ticks] == [Decimal("1500.00"), Decimal("1500.50")]


def test_create_user_then_refuses_a_duplicate(database_url: str) -> None:
    first = quantgraph(
        "create-user",
        "ops",
        "--role",
        "ADMIN",
        "--password-stdin",
        database_url=database_url,
        stdin="long-enough-password\n",
    )
    assert first.returncode == 0, first.stderr
    assert "created ADMIN user ops" in first.stdout
    again = quantgraph(
        "create-user",
        "ops",
        "--password-stdin",
        database_url=database_url,
        stdin="long-enough-password\n",
    )
    assert again.returncode == 1
    assert "username" in again.stderr


async def test_import_ticks_reads_stdin_in_small_batches(database_url: str) -> None:
    rows = "".join(f"600519.SH,2026-03-02T01:31:0{n}Z,1500.0{n},,,1\n" for n in range(3))
    result = quantgraph(
        "import-ticks",
        "-",
        "--batch-size",
        "2",
        database_url=database_url,
        stdin="symbol,time,last\n" + rows,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "rows read 3, written 3, rejected 0\n"
    assert result.stderr == ""


def test_import_commands_refuse_a_batch_size_below_one() -> None:
    result = quantgraph("import-ticks", "-", "--batch-size", "0", database_url="sqlite://")
    assert result.returncode == 2
    assert "--batch-size: must be at least 1" in result.stderr


async def test_create_user_accepts_every_role(database_url: str) -> None:
    for role in Role:
        result = quantgraph(
            "create-user",
            f"user-{role.value.lower()}",
            "--role",
            role.value,
            "--password-stdin",
            database_url=database_url,
            stdin="long-enough-password\n",
        )
        assert result.returncode == 0, result.stderr
        assert f"created {role.value} user user-{role.value.lower()}" in result.stdout
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            for role in Role:
                user = await user_repo.user_by_username(session, f"user-{role.value.lower()}")
                assert user is not None and user.role == role.value
    finally:
        await engine.dispose()


def test_export_schema_writes_the_checked_in_sdl(tmp_path: Path) -> None:
    output = tmp_path / "schema.graphql"
    result = quantgraph("export-schema", "--output", str(output), database_url="sqlite://")
    assert result.returncode == 0, result.stderr
    checked_in = Path(__file__).resolve().parents[2] / "schema.graphql"
    assert output.read_text() == checked_in.read_text()


def test_create_user_refuses_another_case_of_a_taken_name_and_a_bad_password(
    database_url: str,
) -> None:
    first = quantgraph(
        "create-user", "Ops", "--password-stdin", database_url=database_url, stdin="pass-word-1\n"
    )
    assert first.returncode == 0, first.stderr
    again = quantgraph(
        "create-user", "OPS", "--password-stdin", database_url=database_url, stdin="pass-word-1\n"
    )
    assert again.returncode == 1
    assert "that username is taken" in again.stderr
    # a Windows line end leaves a carriage return in the password: refused, not stored
    crlf = quantgraph(
        "create-user", "ops2", "--password-stdin", database_url=database_url, stdin="pw-long-1\r\n"
    )
    assert crlf.returncode == 1
    assert "password must not contain control" in crlf.stderr


async def test_set_role_and_remove_user(database_url: str) -> None:
    created = quantgraph(
        "create-user", "temp", "--password-stdin", database_url=database_url, stdin="pw-long-12\n"
    )
    assert created.returncode == 0, created.stderr
    changed = quantgraph("set-role", "TEMP", "FEED", database_url=database_url)
    assert changed.returncode == 0, changed.stderr
    assert "temp (id " in changed.stdout and "is now FEED" in changed.stdout
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            user = await user_repo.user_by_username(session, "temp")
            assert user is not None and user.role == "FEED"
        removed = quantgraph("remove-user", "temp", database_url=database_url)
        assert removed.returncode == 0, removed.stderr
        async with create_session_factory(engine)() as session:
            assert await user_repo.user_by_username(session, "temp") is None
    finally:
        await engine.dispose()
    for command in (("set-role", "nobody", "ADMIN"), ("remove-user", "nobody")):
        missing = quantgraph(*command, database_url=database_url)
        assert missing.returncode == 1
        assert "no user named 'nobody'" in missing.stderr


async def test_a_role_set_from_the_command_line_reaches_running_servers(
    sqlite_url: str, redis_url: str
) -> None:
    # given: a server on Redis that has cached a VIEWER's role for an hour
    settings = make_settings(sqlite_url, BROADCAST_URL=redis_url, ROLE_CACHE_SECONDS=3600)
    async with running_app(settings) as app:
        token = await user_token(app, "promoted", Role.VIEWER)
        async with http_client(app, token) as client:
            assert error_codes(await post(client, INGEST)) == ["FORBIDDEN"]
            # when: an operator promotes them from another process
            result = await asyncio.to_thread(
                quantgraph,
                "set-role",
                "promoted",
                "FEED",
                database_url=sqlite_url,
                BROADCAST_URL=redis_url,
            )
            assert result.returncode == 0, result.stderr
            # then: the server hears of it on the bus (well before the cache would expire)
            async with asyncio.timeout(30):
                while error_codes(await post(client, INGEST)):  # noqa: ASYNC110 - polls a server
                    await asyncio.sleep(0.05)
