"""``quantgraph import-symbols``: listing symbols from CSV, run as an operator would run it
(SQLite and PostgreSQL), and a running server picking the new symbols up over the bus."""

from __future__ import annotations

import asyncio
import subprocess
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from graphql_api.auth import Role
from graphql_api.services import Services
from storage import models
from storage.engine import create_engine, create_session_factory
from tests.cli.support import COMMAND, quantgraph
from tests.conftest import http_client, make_settings, running_app, user_token
from tests.support.graphql import execute

HEADER = (
    "code,name,exchange,currency,tick_size,lot_size,"
    "session_timezone,session_hours,off_session_orders\n"
)
US_HOURS = "America/New_York,MON-FRI 09:30-16:00,REFUSE"
AAPL = f"AAPL,Apple Inc.,NASDAQ,USD,0.01,1,{US_HOURS}\n"
MSFT = (
    'msft,"Microsoft, Corp.",nasdaq,usd,0.010,1,'
    "Asia/Shanghai,MON-FRI 09:30-11:30 13:00-15:00,rest\n"
)


async def listed(database_url: str) -> dict[str, models.Symbol]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return {row.code: row for row in await session.scalars(select(models.Symbol))}
    finally:
        await engine.dispose()


async def audit_actors(database_url: str) -> list[tuple[str, str, int | None, str]]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            rows = await session.scalars(select(models.SymbolAudit).order_by(models.SymbolAudit.id))
            return [(r.symbol_code, r.action, r.actor_id, r.actor_name) for r in rows]
    finally:
        await engine.dispose()


async def usd_balances(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                select(func.count())
                .select_from(models.CashBalance)
                .where(models.CashBalance.currency == "USD")
            )
    finally:
        await engine.dispose()
    return int(count or 0)


def test_help_documents_the_column_format() -> None:
    result = subprocess.run(
        [*COMMAND, "import-symbols", "--help"], capture_output=True, text=True, check=True
    )
    assert "code,name,exchange,currency,tick_size,lot_size,session_timezone," in result.stdout
    assert "session_hours" in result.stdout and "off_session_orders" in result.stdout
    for option in ("--all-or-nothing", "--batch-size", "--progress", "--no-progress"):
        assert option in result.stdout


async def test_lists_valid_rows_reports_bad_ones_and_is_safe_to_run_again(
    database_url: str, tmp_path: Path
) -> None:
    # given a CSV with two new symbols, a blank line and rows wrong in different ways
    csv_file = tmp_path / "symbols.csv"
    csv_file.write_text(
        HEADER
        + AAPL
        + "\n"
        + MSFT
        + f"BAD CODE,Bad,NASDAQ,USD,0.01,1,{US_HOURS}\n"
        + f"TSLA,Tesla,NASDAQ,USD,NaN,1,{US_HOURS}\n"
        + f"AAPL,Apple again,NASDAQ,USD,0.01,1,{US_HOURS}\n"
        + "BTCUSDT,Bitcoin,BINANCE,USDT,0.01,1,UTC,MON-SUN 00:00-24:00,\n"
        + "NVDA,Nvidia,NASDAQ,USD,0.01,1,America/Gotham,MON-FRI 09:30-16:00,REFUSE\n"
        + "AMD,AMD,NASDAQ,USD,0.01,1,America/New_York,MON-FRI 09:30-25:00,REFUSE\n"
        + "INTC,Intel,NASDAQ,USD,0.01,1,America/New_York,MON-FRI 09:30-16:00,LATER\n"
    )
    # when importing it
    result = quantgraph("import-symbols", str(csv_file), database_url=database_url)
    # then the good rows are listed, the summary groups the bad ones, exit code 1
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "rows read 9, written 2, rejected 7"
    assert any("duplicate code" in line and "line 7" in line for line in lines), lines
    assert any("already listed with other values" in line for line in lines), lines
    assert any("tick_size is not a number" in line for line in lines), lines
    assert any("is not an IANA time zone" in line for line in lines), lines
    assert any("is not a time of day" in line for line in lines), lines
    assert any("off_session_orders is not REFUSE or REST" in line for line in lines), lines
    symbols = await listed(database_url)
    assert (symbols["MSFT"].name, symbols["MSFT"].currency) == ("Microsoft, Corp.", "USD")
    assert symbols["MSFT"].tick_size == Decimal("0.01")
    # with their sessions, as data: zone, windows and the off-session policy
    assert symbols["MSFT"].trading_session == {
        "timezone": "Asia/Shanghai",
        "windows": [
            {"days": ["MON", "TUE", "WED", "THU", "FRI"], "open": "09:30", "close": "11:30"},
            {"days": ["MON", "TUE", "WED", "THU", "FRI"], "open": "13:00", "close": "15:00"},
        ],
    }
    assert (symbols["MSFT"].off_session_orders, symbols["AAPL"].off_session_orders) == (
        "REST",
        "REFUSE",
    )
    assert symbols["AAPL"].trading_session["timezone"] == "America/New_York"
    assert not {"TSLA", "NVDA", "AMD", "INTC"} & symbols.keys()
    # each listing is audited as the operator at the command line, and USD is funded
    actors = await audit_actors(database_url)
    assert [(code, action, actor_id) for code, action, actor_id, _ in actors] == [
        ("AAPL", "CREATE", None),
        ("MSFT", "CREATE", None),
    ]
    assert all(name.startswith("cli:") for *_, name in actors)
    assert await usd_balances(database_url) > 0
    # when the good rows are imported again, nothing is written twice
    csv_file.write_text(HEADER + AAPL + MSFT)
    again = quantgraph("import-symbols", str(csv_file), database_url=database_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout == (
        "rows read 2, written 0, rejected 0\n  unchanged 2: already stored as given\n"
    )
    assert len(await audit_actors(database_url)) == 2


async def test_all_or_nothing_writes_nothing_when_a_row_is_bad(
    database_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "symbols.csv"
    csv_file.write_text(HEADER + AAPL + f"NVDA,Nvidia,NASDAQ,USD,-1,1,{US_HOURS}\n")
    result = quantgraph(
        "import-symbols", str(csv_file), "--all-or-nothing", database_url=database_url
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == "rows read 2, written 0, rejected 1"
    assert "nothing written: all-or-nothing import with rejected rows" in result.stdout
    assert "AAPL" not in await listed(database_url)
    assert await audit_actors(database_url) == []
    assert await usd_balances(database_url) == 0


async def test_a_file_that_cannot_be_imported_exits_2(database_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "symbols.csv"
    csv_file.write_text("code,name\nAAPL,Apple\n")
    result = quantgraph("import-symbols", str(csv_file), database_url=database_url)
    assert result.returncode == 2
    assert "the first line must be the header code,name,exchange" in result.stderr
    missing = quantgraph("import-symbols", str(tmp_path / "nope.csv"), database_url=database_url)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


async def test_progress_goes_to_stderr_when_asked(database_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "symbols.csv"
    csv_file.write_text(HEADER + AAPL + MSFT)
    result = quantgraph(
        "import-symbols",
        str(csv_file),
        "--progress",
        "--batch-size",
        "1",
        database_url=database_url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "rows read 2, written 2, rejected 0\n"
    assert "importing symbols.csv" in result.stderr and "3/3" in result.stderr


async def test_a_running_server_hears_of_an_imported_symbol_at_once(
    database_url: str, tmp_path: Path
) -> None:
    # given a running server that loaded its catalogue before the import
    settings = make_settings(database_url)
    async with running_app(settings) as app:
        services: Services = app.state.services
        seen: list[str] = []
        services.catalog.on_change(lambda spec: seen.append(spec.code))
        csv_file = tmp_path / "symbols.csv"
        csv_file.write_text(HEADER + AAPL)
        # when an operator imports a symbol from another process
        result = await asyncio.to_thread(
            quantgraph, "import-symbols", str(csv_file), database_url=database_url
        )
        assert result.returncode == 0, result.stderr
        # then the server's relay announces it and its catalogue reloads it (no miss needed)
        services.outbox.wake()
        async with asyncio.timeout(15):
            while "AAPL" not in seen:  # noqa: ASYNC110 - waits on the server's relay
                await asyncio.sleep(0.02)
        async with http_client(app, await user_token(app, "admin", Role.ADMIN)) as admin:
            audit = await execute(
                admin, "{ symbolAudit(first: 5) { edges { node { actorName } } } }"
            )
        [entry] = audit["symbolAudit"]["edges"]
        assert entry["node"]["actorName"].startswith("cli:")
