"""The ``quantgraph`` command line, run as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from storage.engine import create_engine
from storage.timeseries.sql import SqlTimeSeriesStore


def quantgraph(
    *args: str, database_url: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "graphql_api.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "graphql_api.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("serve", "migrate", "seed", "import-ticks", "export-schema", "create-user"):
        assert command in result.stdout


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
    assert "rows read 5, written 2, rejected 3" in result.stdout
    assert "unknown symbol" in result.stdout and "not ISO 8601" in result.stdout
    assert "tick size" in result.stdout
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


def test_export_schema_writes_the_checked_in_sdl(tmp_path: Path) -> None:
    output = tmp_path / "schema.graphql"
    result = quantgraph("export-schema", "--output", str(output), database_url="sqlite://")
    assert result.returncode == 0, result.stderr
    checked_in = Path(__file__).resolve().parents[2] / "schema.graphql"
    assert output.read_text() == checked_in.read_text()
