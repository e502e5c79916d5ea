"""Daily bars from Binance's klines endpoint (a local server speaking its documented
format), paged, in exact decimals on the exchange's grid, and ``quantgraph
backfill-bars`` importing them (and a replay CSV's days) like ``import-bars``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path

import pytest

from graphql_api.market.sources import SourceConfigError, binance_klines
from graphql_api.market.sources.binance_klines import daily_bar_lines
from tests.cli.support import daily_bars, environment
from tests.conftest import sql_database
from tests.graphql_api.market.sources.fake_binance import FakeBinance, daily_klines, running_fake

D = Decimal
JAN_1 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with running_fake() as server:
        server.klines = daily_klines(JAN_1, 10)
        yield server


async def test_klines_are_paged_and_come_out_as_bar_csv_in_exact_decimals(
    fake: FakeBinance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binance_klines, "PAGE", 3)
    lines = await daily_bar_lines(fake.rest_url, "btcusdt", date(2026, 1, 2), date(2026, 1, 8))
    assert lines[0] == "date,open,high,low,close,volume"
    assert lines[1] == "2026-01-02,90001.10,90501.00,89501.00,90001.20,1234.56789"
    assert [line.split(",")[0] for line in lines[1:]] == [f"2026-01-0{d}" for d in range(2, 9)]
    # pages of three, each starting the day after the last one received
    assert [q["startTime"][0] for q in fake.kline_queries] == [
        str(JAN_1 + d * 86_400_000) for d in (1, 4, 7)
    ]
    assert {q["symbol"][0] for q in fake.kline_queries} == {"BTCUSDT"}
    assert {q["interval"][0] for q in fake.kline_queries} == {"1d"}


async def test_a_kline_not_in_the_documented_format_is_a_clear_error(fake: FakeBinance) -> None:
    fake.klines = [[JAN_1, 90000.1, "1", "1", "1", "1"]]  # a JSON number, not a string
    with pytest.raises(SourceConfigError, match=r"90000\.1 is not a decimal string"):
        await daily_bar_lines(fake.rest_url, "BTCUSDT", date(2026, 1, 1), date(2026, 1, 1))


async def quantgraph(database_url: str, *args: str, **env: str) -> tuple[int, str, str]:
    """The real command in a subprocess, without blocking the fake server's loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "graphql_api.server.cli",
        *args,
        env={**environment(database_url), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_backfill_bars_from_binance_imports_the_range(
    fake: FakeBinance, request: pytest.FixtureRequest
) -> None:
    async with sql_database(request, "sqlite") as url:
        code, out, err = await quantgraph(
            url,
            "backfill-bars",
            "--source=binance",
            "--symbol=BTCUSDT",
            "--from=2026-01-03",
            "--to=2026-01-05",
            BINANCE_REST_URL=fake.rest_url,
        )
        assert code == 0, err
        assert "rows read 3, written 3, rejected 0" in out
        stored = {b.day: (b.open, b.close, b.volume) for b in await daily_bars(url, "BTCUSDT")}
        assert [stored[date(2026, 1, day)] for day in (3, 4, 5)] == [
            (D(f"{90000 + n}.10"), D(f"{90000 + n}.20"), D("1234.56789")) for n in (2, 3, 4)
        ]
        # an unknown symbol: the exchange's refusal, exit status 2
        fake.info_status = HTTPStatus.BAD_REQUEST
        fake.info_body = {"code": -1121, "msg": "Invalid symbol."}
        code, _, err = await quantgraph(
            url,
            "backfill-bars",
            "--source=binance",
            "--symbol=NOPEUSDT",
            "--from=2026-01-03",
            "--to=2026-01-05",
            BINANCE_REST_URL=fake.rest_url,
        )
        assert code == 2
        assert "Invalid symbol." in err


async def test_backfill_bars_from_a_replay_file_keeps_the_days_in_range(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text(
        "date,open,high,low,close,volume\n"
        "2024-01-02,1520.00,1535.50,1510.00,1530.00,12300\n"
        "2024-01-03,1530.00,1540.00,1525.00,1535.00,9800\n"
        "2024-01-04,1535.00,1545.00,1530.00,1540.00,10100\n"
    )
    async with sql_database(request, "sqlite") as url:
        code, out, err = await quantgraph(
            url,
            "backfill-bars",
            "--source=replay",
            f"--file={bars}",
            "--symbol=600519.SH",
            "--from=2024-01-03",
            "--to=2024-01-31",
        )
        assert code == 0, err
        assert "rows read 2, written 2, rejected 0" in out
        stored = {b.day: b.close for b in await daily_bars(url, "600519.SH")}
        assert stored[date(2024, 1, 3)] == Decimal("1535.00")
        assert stored[date(2024, 1, 4)] == Decimal("1540.00")
