"""``quantgraph import-bars``: daily bars from CSV, run as a user would run it."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import subprocess
import termios
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from storage.engine import create_engine
from storage.models import DailyBar
from tests.cli.support import COMMAND, daily_bars, environment, quantgraph

HEADER = "date,open,high,low,close,volume\n"
FIRST_DAY = date(1980, 1, 1)  # long before the seeded history, so imports never collide with it


def bar_rows(count: int, *, bad: frozenset[int] = frozenset()) -> list[str]:
    """Valid daily rows of a 0.01-tick symbol, except that ``bad`` ones have high < close."""
    rows = []
    for number in range(count):
        day = FIRST_DAY + timedelta(days=number)
        high = "9.00" if number in bad else "10.50"
        rows.append(f"{day.isoformat()},10.00,{high},9.80,10.20,{number}\n")
    return rows


async def imported_count(database_url: str, code: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                select(func.count())
                .select_from(DailyBar)
                .where(DailyBar.symbol_code == code, DailyBar.day < date(2000, 1, 1))
            )
    finally:
        await engine.dispose()
    return int(count or 0)


def test_help_documents_the_column_format() -> None:
    result = subprocess.run(
        [*COMMAND, "import-bars", "--help"], capture_output=True, text=True, check=True
    )
    assert "date,open,high,low,close,volume" in result.stdout
    for option in ("--symbol", "--all-or-nothing", "--batch-size", "--progress", "--no-progress"):
        assert option in result.stdout
    assert "YYYY-MM-DD" in result.stdout and "tick grid" in result.stdout


async def test_imports_valid_rows_and_upserts_existing_days(
    database_url: str, tmp_path: Path
) -> None:
    # given a CSV with two new days, a blank line and a day the seed already holds
    before = await daily_bars(database_url, "600036.SH")
    existing = before[-1].day
    csv_file = tmp_path / "bars.csv"
    csv_file.write_text(
        HEADER
        + "2001-01-02,10.00,10.50,9.80,10.20,12300\n"
        + "\n"
        + "2001-01-03,10.20,10.90,10.10,10.80,45600\n"
        + f"{existing.isoformat()},38.00,39.00,37.50,38.50,100\n"
    )
    # when importing it for a lower-case symbol code
    result = quantgraph(
        "import-bars", str(csv_file), "--symbol", "600036.sh", database_url=database_url
    )
    # then every row is written, the summary says so, and scripts get no noise on stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout == "rows read 3, written 3, rejected 0\n"
    assert result.stderr == ""
    after = {row.day: row for row in await daily_bars(database_url, "600036.SH")}
    assert len(after) == len(before) + 2
    assert after[date(2001, 1, 3)].close == Decimal("10.80")
    assert after[existing].close == Decimal("38.50") and after[existing].volume == Decimal(100)


BAD_ROWS = (
    HEADER
    + "2001-01-02,10.00,10.50,9.80,10.20,100\n"  # line 2: good
    + "2001-13-01,10.00,10.50,9.80,10.20,100\n"  # 3: no such month
    + "2001-01-04,10.001,10.50,9.80,10.20,100\n"  # 4: off the 0.01 grid
    + "2001-01-05,10.00,10.10,9.80,10.20,100\n"  # 5: high below close
    + "2001-01-06,10.00,10.10,9.80,10.20,100\n"  # 6: high below close
    + "2001-01-07,10.00,10.10,9.80,10.20,100\n"  # 7: high below close
    + "2001-01-08,10.00,10.50,9.80,10.20,-1\n"  # 8: negative volume
    + "2001-01-09,10.00,10.50,9.80\n"  # 9: missing a column
    + "2001-01-02,10.00,10.50,9.80,10.20,100\n"  # 10: duplicate of line 2
    + "2001-01-12,10.00,10.50,9.80,10.20,100\n"  # 11: good
)


async def test_reports_rejected_rows_grouped_by_reason(database_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "bars.csv"
    csv_file.write_text(BAD_ROWS)
    result = quantgraph(
        "import-bars", str(csv_file), "--symbol", "600036.SH", database_url=database_url
    )
    # some rows were rejected: exit 1, the good ones are written
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "rows read 10, written 2, rejected 8"
    # the biggest group first, with its lines and one full message
    assert lines[1:3] == [
        "  rejected 3: high is below open or close (lines 5, 6, 7)",
        "    e.g. line 5: high 10.10 is below open or close",
    ]
    for expected in (
        "  rejected 1: date is not YYYY-MM-DD (line 3)",
        "    e.g. line 3: date '2001-13-01' is not a YYYY-MM-DD date",
        "  rejected 1: open is not on the 0.01 tick grid (line 4)",
        "  rejected 1: volume is negative (line 8)",
        "  rejected 1: wrong number of columns (line 9)",
        "    e.g. line 9: expected 6 columns, got 4",
        "  rejected 1: duplicate date (line 10)",
        "    e.g. line 10: duplicate date 2001-01-02 (first on line 2)",
    ):
        assert expected in lines, result.stdout
    days = {row.day for row in await daily_bars(database_url, "600036.SH")}
    assert {date(2001, 1, 2), date(2001, 1, 12)} <= days
    assert date(2001, 1, 5) not in days


async def test_all_or_nothing_writes_nothing_when_a_row_is_rejected(
    database_url: str, tmp_path: Path
) -> None:
    # given 5,000 rows whose last one is bad, imported in batches of 700
    csv_file = tmp_path / "bars.csv"
    csv_file.write_text(HEADER + "".join(bar_rows(5000, bad=frozenset({4999}))))
    result = quantgraph(
        "import-bars",
        str(csv_file),
        "--symbol",
        "600036.SH",
        "--all-or-nothing",
        "--batch-size",
        "700",
        database_url=database_url,
    )
    # then seven batches were staged and rolled back: nothing is written
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == "rows read 5000, written 0, rejected 1"
    assert "  rejected 1: high is below open or close (line 5001)" in result.stdout
    assert "nothing written: all-or-nothing import with rejected rows" in result.stdout
    assert await imported_count(database_url, "600036.SH") == 0


async def test_a_large_file_is_written_in_batches(database_url: str, tmp_path: Path) -> None:
    # given 5,000 rows, three of them bad, and a batch size that does not divide them
    csv_file = tmp_path / "bars.csv"
    bad = frozenset({0, 2500, 4999})
    csv_file.write_text(HEADER + "".join(bar_rows(5000, bad=bad)))
    result = quantgraph(
        "import-bars",
        str(csv_file),
        "--symbol",
        "600036.SH",
        "--batch-size",
        "700",
        database_url=database_url,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "rows read 5000, written 4997, rejected 3",
        "  rejected 3: high is below open or close (lines 2, 2502, 5001)",
    ]
    stored = await daily_bars(database_url, "600036.SH")
    imported = [row for row in stored if row.day < date(2000, 1, 1)]
    assert len(imported) == 4997
    assert imported[-1].day == FIRST_DAY + timedelta(days=4998)
    assert imported[-1].volume == Decimal(4998)


async def test_streams_stdin_and_commits_each_batch(database_url: str) -> None:
    # given an import reading from a pipe in batches of 1,000
    rows = bar_rows(5000)
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "import-bars",
        "-",
        "--symbol",
        "600036.SH",
        "--batch-size",
        "1000",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(database_url),
    )
    try:
        assert process.stdin is not None
        # when only the first 2,500 rows have arrived
        process.stdin.write((HEADER + "".join(rows[:2500])).encode())
        await process.stdin.drain()
        # then the first two batches are committed while the import waits for more
        for _ in range(600):
            if await imported_count(database_url, "600036.SH") >= 2000:
                break
            await asyncio.sleep(0.1)
        assert await imported_count(database_url, "600036.SH") == 2000
        # and the rest follows once the input ends
        remainder = "".join(rows[2500:]).encode()
        stdout, stderr = await asyncio.wait_for(process.communicate(remainder), timeout=120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode() == "rows read 5000, written 5000, rejected 0\n"
    assert await imported_count(database_url, "600036.SH") == 5000


async def test_progress_bar_goes_to_stderr_only_when_asked(
    database_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "bars.csv"
    csv_file.write_text(HEADER + "".join(bar_rows(50)))
    result = quantgraph(
        "import-bars",
        str(csv_file),
        "--symbol",
        "600036.SH",
        "--progress",
        database_url=database_url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "rows read 50, written 50, rejected 0\n"
    assert "importing bars.csv" in result.stderr and "51/51" in result.stderr


def test_progress_bar_is_on_by_default_on_a_terminal(database_url: str, tmp_path: Path) -> None:
    # given stderr is a terminal (a pseudo-terminal here) and stdout a pipe
    csv_file = tmp_path / "bars.csv"
    csv_file.write_text(HEADER + "".join(bar_rows(50)))
    terminal, stderr = pty.openpty()
    # a real terminal has a size; tqdm draws nothing on a 0x0 one
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        result = subprocess.run(
            [*COMMAND, "import-bars", str(csv_file), "--symbol", "600036.SH"],
            env=environment(database_url),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=120,
            check=False,
        )
        os.close(stderr)
        shown = _read_all(terminal)
    finally:
        os.close(terminal)
    # then the bar goes to the terminal and the summary stays clean for the pipe
    assert result.returncode == 0
    assert result.stdout == "rows read 50, written 50, rejected 0\n"
    assert "importing bars.csv" in shown and "51/51" in shown


def _read_all(terminal: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the other side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_unusable_input_exits_2_without_writing(database_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "bars.csv"
    csv_file.write_text(HEADER + "".join(bar_rows(3)))
    missing = quantgraph(
        "import-bars",
        str(tmp_path / "nope.csv"),
        "--symbol",
        "600036.SH",
        database_url=database_url,
    )
    assert (missing.returncode, missing.stdout) == (2, "")
    assert "cannot read" in missing.stderr and "nope.csv" in missing.stderr
    unknown = quantgraph(
        "import-bars", str(csv_file), "--symbol", "NOPE.SH", database_url=database_url
    )
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "unknown symbol 'NOPE.SH'" in unknown.stderr
    header = quantgraph(
        "import-bars", "-", "--symbol", "600036.SH", database_url=database_url, stdin="day,o\n"
    )
    assert (header.returncode, header.stdout) == (2, "")
    assert "date,open,high,low,close,volume" in header.stderr


async def test_an_undecodable_line_stops_the_import_and_names_the_line(
    database_url: str, tmp_path: Path
) -> None:
    # given a file whose fourth line is not UTF-8
    csv_file = tmp_path / "bars.csv"
    rows = bar_rows(5)
    csv_file.write_bytes(
        (HEADER + "".join(rows[:2])).encode()
        + b"1980-01-03,10.00,10.50,9.80,10.20,\xff\n"
        + "".join(rows[3:]).encode()
    )
    result = quantgraph(
        "import-bars", str(csv_file), "--symbol", "600036.SH", database_url=database_url
    )
    # then the rows before it are written and the summary says where it stopped
    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "rows read 2, written 2, rejected 0"
    assert lines[-1].startswith("stopped early: line 4: 'utf-8' codec can't decode byte 0xff")
    assert await imported_count(database_url, "600036.SH") == 2
