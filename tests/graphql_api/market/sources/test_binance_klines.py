"""Daily bars through the sources' ``DailyBarSource`` side: Binance's klines endpoint (a
local server speaking its documented format) paged, in exact decimals on the
exchange's grid, rate limits waited out; a replay CSV's days; and ``quantgraph
backfill-bars`` importing them like ``import-bars`` (and refusing a source without
history, an empty range, an unknown symbol)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path

import pytest

from graphql_api.market.simulated_feed import RandomWalk
from graphql_api.market.sources import DailyBarSource, SourceConfigError, binance_klines
from graphql_api.market.sources.binance import BinanceEndpoints, BinanceSource
from graphql_api.market.sources.binance_klines import (
    RateLimitedError,
    daily_bar_lines,
    daily_bar_pages,
)
from graphql_api.market.sources.replay import ReplaySource
from graphql_api.market.sources.simulated import SimulatedSource
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


def binance_at(fake: FakeBinance) -> BinanceSource:
    return BinanceSource([], BinanceEndpoints(fake.ws_url, fake.rest_url), lambda _: None)


async def no_ticks() -> list[object]:
    return []


def test_replay_and_binance_provide_daily_bars_and_the_walk_does_not() -> None:
    endpoints = BinanceEndpoints("ws://127.0.0.1:1", "http://127.0.0.1:1")
    assert isinstance(BinanceSource([], endpoints, lambda _: None), DailyBarSource)
    assert isinstance(ReplaySource(no_ticks, frozenset(), speed=None), DailyBarSource)  # type: ignore[arg-type]
    walk = SimulatedSource(RandomWalk([], {}, seed=0), ticks_per_second=1)
    assert not isinstance(walk, DailyBarSource)


async def test_more_days_than_one_page_come_in_pages_through_the_source(
    fake: FakeBinance,
) -> None:
    # given 1,200 days on the exchange (its page limit is 1,000)
    fake.klines = daily_klines(int(datetime(2022, 1, 1, tzinfo=UTC).timestamp() * 1000), 1200)
    # when the source is asked for all of them
    chunks = [
        chunk
        async for chunk in binance_at(fake).daily_bars(
            "BTCUSDT", date(2022, 1, 1), date(2025, 12, 31)
        )
    ]
    # then two pages arrive, the header first, every day once and in order
    assert [len(chunk) for chunk in chunks] == [1001, 200]
    assert chunks[0][0] == "date,open,high,low,close,volume"
    days = [line.split(",")[0] for line in chunks[0][1:] + chunks[1]]
    assert days[0] == "2022-01-01" and len(set(days)) == 1200 and days == sorted(days)
    assert [q["limit"][0] for q in fake.kline_queries] == ["1000", "1000"]


async def test_a_429_is_waited_out_as_retry_after_says(fake: FakeBinance) -> None:
    fake.kline_refusals = [
        (HTTPStatus.TOO_MANY_REQUESTS, "3"),
        (HTTPStatus.TOO_MANY_REQUESTS, None),
    ]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    pages = daily_bar_pages(
        fake.rest_url, "BTCUSDT", date(2026, 1, 1), date(2026, 1, 2), sleep=sleep
    )
    lines = [line async for page in pages for line in page]
    assert waits == [3.0, 1.0]  # as asked; one second when the header is missing
    assert len(lines) == 3 and len(fake.kline_queries) == 3


@pytest.mark.parametrize(
    ("refusal", "message"),
    [
        ((HTTPStatus.IM_A_TEAPOT, "120"), r"HTTP 418.*retry after 120 seconds"),
        ((HTTPStatus.TOO_MANY_REQUESTS, "3600"), r"HTTP 429.*retry after 3600 seconds"),
    ],
)
async def test_a_ban_or_a_long_wait_ends_the_backfill_saying_how_long(
    fake: FakeBinance, refusal: tuple[HTTPStatus, str], message: str
) -> None:
    fake.kline_refusals = [refusal]
    with pytest.raises(RateLimitedError, match=message):
        await daily_bar_lines(fake.rest_url, "BTCUSDT", date(2026, 1, 1), date(2026, 1, 2))
    assert len(fake.kline_queries) == 1  # not asked again


async def test_an_empty_range_is_refused_before_any_request(fake: FakeBinance) -> None:
    with pytest.raises(SourceConfigError, match=r"ends \(2026-01-01\) before it starts"):
        await daily_bar_lines(fake.rest_url, "BTCUSDT", date(2026, 1, 2), date(2026, 1, 1))
    assert fake.info_queries == [] and fake.kline_queries == []


async def backfill(url: str, *args: str, **env: str) -> tuple[int, str, str]:
    return await quantgraph(url, "backfill-bars", *args, **env)


async def test_backfill_reports_progress_bad_rows_and_the_exchange_s_errors(
    fake: FakeBinance, request: pytest.FixtureRequest
) -> None:
    # given three days, the middle one with a high below its close (a bad row)
    fake.klines = daily_klines(JAN_1, 3)
    fake.klines[1][2] = "89000.00000000"
    async with sql_database(request, "sqlite") as url:
        days = ("--symbol=BTCUSDT", "--from=2026-01-01", "--to=2026-01-03")
        code, out, err = await backfill(
            url, "--source=binance", *days, "--progress", BINANCE_REST_URL=fake.rest_url
        )
        # then the good days are written, the bad one reported by the import, exit 1
        assert code == 1, err
        assert "rows read 3, written 2, rejected 1" in out
        assert "high" in out and "line 3" in out
        assert "binance BTCUSDT 2026-01-01..2026-01-03: 3 of at most 3 days fetched" in err
        assert {b.day for b in await daily_bars(url, "BTCUSDT")} >= {
            date(2026, 1, 1),
            date(2026, 1, 3),
        }
        # a 429 with Retry-After: 0 is retried, the backfill completes
        fake.klines = daily_klines(JAN_1, 3)
        fake.kline_refusals = [(HTTPStatus.TOO_MANY_REQUESTS, "0")]
        code, out, err = await backfill(
            url, "--source=binance", *days, BINANCE_REST_URL=fake.rest_url
        )
        assert (code, "rows read 3, written 3, rejected 0" in out) == (0, True), err
        # a server error: exit 2, nothing more written, the reason on stderr
        fake.kline_refusals = [(HTTPStatus.INTERNAL_SERVER_ERROR, None)]
        code, out, err = await backfill(
            url, "--source=binance", *days, BINANCE_REST_URL=fake.rest_url
        )
        assert code == 2 and "source unavailable" in err and "500" in err
        # a ban: exit 2, saying how long to wait
        fake.kline_refusals = [(HTTPStatus.IM_A_TEAPOT, "300")]
        code, out, err = await backfill(
            url, "--source=binance", *days, BINANCE_REST_URL=fake.rest_url
        )
        assert code == 2 and "retry after 300 seconds" in err


async def test_backfill_refuses_what_cannot_be_backfilled(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text("date,open,high,low,close,volume\n2024-01-02,10.00,11.00,9.00,10.50,100\n")
    async with sql_database(request, "sqlite") as url:
        days = ("--from=2024-01-01", "--to=2024-01-31")
        # a source without history
        code, _, err = await backfill(url, "--source=simulated", "--symbol=600519.SH", *days)
        assert code == 2
        assert "source simulated provides no daily bars" in err
        # the replay source without its file
        code, _, err = await backfill(url, "--source=replay", "--symbol=600519.SH", *days)
        assert code == 2 and "no daily-bar file" in err
        # a symbol our catalogue does not know
        code, _, err = await backfill(
            url, "--source=replay", f"--file={bars}", "--symbol=NOPE.SH", *days
        )
        assert code == 2 and "NOPE.SH" in err
        # a range that ends before it starts
        code, _, err = await backfill(
            url,
            "--source=replay",
            f"--file={bars}",
            "--symbol=600519.SH",
            "--from=2024-02-01",
            "--to=2024-01-01",
        )
        assert code == 2 and "--to is before --from" in err
        # a file that is not there
        code, _, err = await backfill(
            url, "--source=replay", f"--file={tmp_path / 'nope.csv'}", "--symbol=600519.SH", *days
        )
        assert code == 2 and "nope.csv" in err
        assert await daily_bars(url, "NOPE.SH") == []


async def test_a_replay_file_s_bad_row_in_the_range_is_reported_with_its_line_in_the_file(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text(
        "date,open,high,low,close,volume\n"
        "2023-12-29,1520.00,1535.50,1510.00,1530.00,12300\n"  # before the range
        "2024-01-02,1520.00,1535.50,1510.00,1530.00,12300\n"
        "2024-01-03,1530.00,1520.00,1525.00,1535.00,9800\n"  # high below open: line 4
        "2024-02-01,1535.00,1545.00,1530.00,1540.00,10100\n"  # after it
    )
    async with sql_database(request, "sqlite") as url:
        code, out, err = await backfill(
            url,
            "--source=replay",
            f"--file={bars}",
            "--symbol=600519.SH",
            "--from=2024-01-01",
            "--to=2024-01-31",
        )
        assert code == 1, err
        assert "rows read 2, written 1, rejected 1" in out
        assert "line 4" in out
        stored = {b.day for b in await daily_bars(url, "600519.SH")}
        assert date(2024, 1, 2) in stored
        assert not stored & {date(2023, 12, 29), date(2024, 1, 3), date(2024, 2, 1)}
