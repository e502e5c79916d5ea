"""CSV imports of daily bars (the ``importBars`` mutation's path)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from graphql_api.market.imports import bars
from graphql_api.market.imports.bars import ImportReport
from graphql_api.platform.errors import ErrorCode
from graphql_api.services import Services
from storage import models


async def import_bars(
    services: Services,
    symbol: str,
    text: str,
    *,
    all_or_nothing: bool,
    max_rows: int | None = None,
) -> ImportReport:
    settings = services.settings
    return await bars.import_bars(
        services.catalog,
        services.sessions,
        symbol,
        text,
        max_age_years=settings.max_bar_age_years,
        max_future=timedelta(seconds=settings.max_tick_future_seconds),
        all_or_nothing=all_or_nothing,
        max_rows=max_rows,
    )


async def daily_rows(services: Services, symbol: str) -> list[models.DailyBar]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(models.DailyBar)
            .where(models.DailyBar.symbol_code == symbol)
            .order_by(models.DailyBar.day)
        )
        return list(rows)


CSV_HEADER = "date,open,high,low,close,volume\n"


async def test_import_bars_upserts_by_symbol_and_day(services: Services) -> None:
    rows = await daily_rows(services, "600036.SH")
    existing = rows[-1].day
    text = (
        CSV_HEADER
        + "2001-01-02,10.00,10.50,9.80,10.20,12300\n"
        + "\n"  # blank lines are skipped
        + "2001-01-03,10.20,10.90,10.10,10.80,45600\n"
        + f"{existing.isoformat()},38.00,39.00,37.50,38.50,100\n"
    )
    report = await import_bars(services, "600036.sh", text, all_or_nothing=True)
    assert (report.rows_read, report.rows_written, report.rejected, report.errors) == (3, 3, [], [])
    after = {row.day: row for row in await daily_rows(services, "600036.SH")}
    assert len(after) == len(rows) + 2
    assert after[date(2001, 1, 3)].close == Decimal("10.80")
    assert after[existing].close == Decimal("38.50") and after[existing].volume == Decimal(100)


BAD_ROWS = (
    CSV_HEADER
    + "2001-01-02,10.00,10.50,9.80,10.20,100\n"  # line 2: good
    + "2001-13-01,10.00,10.50,9.80,10.20,100\n"  # 3: no such month
    + "2001-01-04,10.001,10.50,9.80,10.20,100\n"  # 4: off the 0.01 grid
    + "2001-01-05,10.00,10.10,9.80,10.20,100\n"  # 5: high below close
    + "2001-01-06,10.00,10.50,10.10,10.20,100\n"  # 6: low above open
    + "2001-01-07,10.00,10.50,9.80,10.20,-1\n"  # 7: negative volume
    + "2001-01-08,0,10.50,9.80,10.20,100\n"  # 8: zero price
    + "2001-01-09,ten,10.50,9.80,10.20,100\n"  # 9: not a number
    + "2001-01-10,10.00,10.50,9.80\n"  # 10: missing columns
    + "2001-01-02,10.00,10.50,9.80,10.20,100\n"  # 11: duplicate of line 2
    + "2001-01-12,10.00,10.50,9.80,10.20,100\n"  # 12: good
)


async def test_import_bars_reports_every_bad_row(services: Services) -> None:
    # a CLI import writes the good rows and reports the others
    report = await import_bars(services, "600036.SH", BAD_ROWS, all_or_nothing=False)
    assert (report.rows_read, report.rows_written) == (11, 2)
    assert [(r.line, r.code) for r in report.rejected] == [
        (3, ErrorCode.INVALID),
        (4, ErrorCode.INVALID_PRECISION),
        (5, ErrorCode.INVALID),
        (6, ErrorCode.INVALID),
        (7, ErrorCode.OUT_OF_RANGE),
        (8, ErrorCode.OUT_OF_RANGE),
        (9, ErrorCode.INVALID),
        (10, ErrorCode.INVALID),
        (11, ErrorCode.CONFLICT),
    ]
    assert "first on line 2" in report.rejected[-1].reason
    days = {row.day for row in await daily_rows(services, "600036.SH")}
    assert {date(2001, 1, 2), date(2001, 1, 12)} <= days


async def test_all_or_nothing_import_writes_nothing_on_a_bad_row(services: Services) -> None:
    before = len(await daily_rows(services, "600036.SH"))
    report = await import_bars(services, "600036.SH", BAD_ROWS, all_or_nothing=True)
    assert report.rows_written == 0
    assert [e.field for e in report.errors][:2] == ["csv.3", "csv.4"]
    assert len(await daily_rows(services, "600036.SH")) == before


async def test_import_bars_refuses_unknown_symbols_bad_headers_and_huge_files(
    services: Services,
) -> None:
    unknown = await import_bars(services, "NOPE", CSV_HEADER, all_or_nothing=True)
    assert [(e.field, e.code) for e in unknown.errors] == [("symbol", ErrorCode.UNKNOWN_SYMBOL)]
    header = await import_bars(services, "BTCUSDT", "day,o,h,l,c,v\n", all_or_nothing=True)
    assert [(e.field, e.code) for e in header.errors] == [("csv", ErrorCode.INVALID)]
    big = CSV_HEADER + "2001-01-02,1.00,1.00,1.00,1.00,1\n" * 3
    capped = await import_bars(services, "BTCUSDT", big, all_or_nothing=True, max_rows=2)
    assert [(e.field, e.code) for e in capped.errors] == [("csv", ErrorCode.OUT_OF_RANGE)]
    assert capped.rows_written == 0
