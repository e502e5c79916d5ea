"""``import-ticks`` and ``import-bars`` apply the market-data value ranges (time window, digits)
(SQLite and PostgreSQL), and ``import-ticks`` honours MAX_TICK_FUTURE_SECONDS."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.engine import create_engine
from storage.timeseries.sql import SqlTimeSeriesStore
from tests.cli.support import COMMAND, daily_bars, quantgraph


async def test_import_ticks_refuses_times_outside_the_window_and_overlong_numbers(
    database_url: str, tmp_path: Path
) -> None:
    # given a BOM-prefixed CSV with one good row and rows a typo or a bug produced
    good = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    csv_file = tmp_path / "ticks.csv"
    csv_file.write_text(
        "\ufeffsymbol,time,last,volume\n"
        f"600519.SH,{good},1500.00,100\n"
        "600519.SH,0999-01-01T00:00:00Z,1500.00,1\n"
        "600519.SH,9999-12-31T23:59:59.999999-23:59,1500.00,1\n"
        "600519.SH,0001-01-01T00:00:00+23:59,1500.00,1\n"
        f"600519.SH,{good},1500.00,{'1' * 40}\n",
        encoding="utf-8",
    )
    # when importing it
    result = quantgraph("import-ticks", str(csv_file), database_url=database_url)
    # then only the good row is written; the others are reported, nothing crashed
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("rows read 5, written 1, rejected 4\n"), result.stdout
    assert "Traceback" not in result.stderr
    engine = create_engine(database_url)
    try:
        latest = await SqlTimeSeriesStore(engine).latest_ticks(["600519.SH"])
    finally:
        await engine.dispose()
    assert latest["600519.SH"].time == datetime.fromisoformat(good)


def test_import_ticks_uses_the_future_allowance_setting(database_url: str, tmp_path: Path) -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    csv_file = tmp_path / "ticks.csv"
    csv_file.write_text(f"symbol,time,last\n600519.SH,{soon},1500.00\n")
    environment = {**os.environ, "DATABASE_URL": database_url, "MAX_TICK_FUTURE_SECONDS": "3600"}
    result = subprocess.run(
        [*COMMAND, "import-ticks", str(csv_file)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_import_bars_refuses_dates_outside_the_window(
    database_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "bars.csv"
    csv_file.write_text(
        "\ufeffdate,open,high,low,close,volume\n"
        "0001-01-01,10.00,10.50,9.80,10.20,100\n"
        "9999-12-31,10.00,10.50,9.80,10.20,100\n"
        "1901-01-02,10.00,10.50,9.80,10.20,100\n"
        "2001-01-02,10.00,10.50,9.80,10.20,100\n",
        encoding="utf-8",
    )
    result = quantgraph(
        "import-bars", str(csv_file), "--symbol", "600036.SH", database_url=database_url
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("rows read 4, written 1, rejected 3\n"), result.stdout
    assert "rejected 3: date is out of range (lines 2, 3, 4)" in result.stdout
    days = [bar.day.isoformat() for bar in await daily_bars(database_url, "600036.SH")]
    assert "2001-01-02" in days and "0001-01-01" not in days and "9999-12-31" not in days
