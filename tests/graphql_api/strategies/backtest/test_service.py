"""The backtest service over stored bars."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from graphql_api.platform.errors import ErrorCode
from graphql_api.services import Services
from graphql_api.strategies import backtest
from graphql_api.strategies.backtest.service import (
    BacktestRequest,
    compute_backtest,
    periods_per_year,
    prepare_backtest,
    run_backtest,
)
from storage import models
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.buckets import floor_to_interval

YEAR_AGO = datetime.now(UTC) - timedelta(days=400)
TOMORROW = datetime.now(UTC) + timedelta(days=1)


def request(**overrides: object) -> BacktestRequest:
    values: dict[str, object] = {
        "kind": "SMA_CROSS",
        "parameters": {"fast": 5, "slow": 20},
        "symbol": "600519.SH",
        "start": YEAR_AGO,
        "end": TOMORROW,
    }
    values.update(overrides)
    return BacktestRequest(**values)  # type: ignore[arg-type]


async def daily_rows(services: Services, symbol: str) -> list[models.DailyBar]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(models.DailyBar)
            .where(models.DailyBar.symbol_code == symbol)
            .order_by(models.DailyBar.day)
        )
        return list(rows)


async def test_backtest_over_seeded_daily_bars(services: Services) -> None:
    # given a year of seeded daily bars
    rows = await daily_rows(services, "600519.SH")
    assert len(rows) > 200
    # when backtesting SMA_CROSS(5, 20) over all of them
    outcome = await run_backtest(
        services.sessions, services.catalog, services.timeseries, request()
    )
    # then the result covers every bar and its accounting adds up
    assert outcome.errors == [] and outcome.result is not None
    result = outcome.result
    assert len(result.equity) == len(rows)
    assert result.trade_count == len(result.trades) > 0
    assert result.final_equity == result.initial_cash + sum(t.pnl for t in result.trades)
    assert result.total_commission > 0
    assert 0 <= result.max_drawdown_pct < 100 and 0 < result.exposure_pct <= 100
    assert result.win_rate_pct is not None and 0 <= result.win_rate_pct <= 100
    assert all(t.quantity % 100 == 0 for t in result.trades)  # whole A-share lots
    # and it is the engine's result on the same bars, with SSE's 252 days a year
    bars = backtest.Bars.from_decimals(
        [datetime.combine(r.day, datetime.min.time(), tzinfo=UTC) for r in rows],
        [r.open for r in rows],
        [r.high for r in rows],
        [r.low for r in rows],
        [r.close for r in rows],
    )
    direct = backtest.run_backtest(
        bars,
        "SMA_CROSS",
        {"fast": 5, "slow": 20},
        initial_cash=Decimal(1_000_000),
        commission_rate=Decimal("0.0003"),
        lot_size=Decimal(100),
        periods_per_year=252,
    )
    assert (direct.final_equity, direct.sharpe) == (result.final_equity, result.sharpe)


async def test_backtest_range_is_by_bar_start(services: Services) -> None:
    rows = await daily_rows(services, "000001.SZ")
    first, last = rows[10].day, rows[60].day
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    # an end just after a bar's midnight start excludes nothing before it, includes that bar
    end = datetime.combine(last, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
    prepared, errors = await prepare_backtest(
        services.sessions,
        services.catalog,
        services.timeseries,
        request(symbol="000001.sz", start=start, end=end),
    )
    assert errors == [] and prepared is not None
    assert len(prepared.bars) == 51
    assert prepared.bars.time_at(0).date() == first and prepared.bars.time_at(50).date() == last


async def test_bad_input_is_reported_as_user_errors(services: Services) -> None:
    cases: list[tuple[BacktestRequest, set[tuple[str, ErrorCode]]]] = [
        (request(symbol="NOPE"), {("symbol", ErrorCode.UNKNOWN_SYMBOL)}),
        (
            request(parameters={"fast": 20, "slow": 5}),
            {("parameters.fast", ErrorCode.INVALID_COMBINATION)},
        ),
        (
            request(parameters={"fast": 5, "speed": 1}),
            {("parameters.speed", ErrorCode.UNKNOWN_PARAMETER)},
        ),
        (request(kind="MOON_PHASE"), {("kind", ErrorCode.INVALID)}),
        (request(start=TOMORROW, end=YEAR_AGO), {("to", ErrorCode.INVALID)}),
        (request(initial_cash=Decimal(0)), {("initialCash", ErrorCode.OUT_OF_RANGE)}),
        (request(commission_rate=Decimal(1)), {("commission", ErrorCode.OUT_OF_RANGE)}),
        (
            request(fixed_quantity=Decimal(150)),
            {("fixedQuantity", ErrorCode.INVALID_PRECISION)},
        ),
        (
            request(start=TOMORROW - timedelta(days=15)),
            {("from", ErrorCode.OUT_OF_RANGE)},  # ~10 bars; SMA(5, 20) needs 22
        ),
    ]
    for given, expected in cases:
        outcome = await run_backtest(
            services.sessions, services.catalog, services.timeseries, given
        )
        assert outcome.result is None
        assert {(e.field, e.code) for e in outcome.errors} >= expected, (given, outcome.errors)


def test_periods_per_year_by_exchange_and_interval() -> None:
    assert periods_per_year("SSE", KlineInterval.DAY_1) == 252
    assert periods_per_year("BINANCE", KlineInterval.DAY_1) == 365
    assert periods_per_year("SZSE", KlineInterval.MINUTE_1) == 252 * 4 * 60
    assert periods_per_year("BINANCE", KlineInterval.HOUR_1) == 365 * 24
    assert periods_per_year("BINANCE", KlineInterval.MINUTE_15) == 365 * 24 * 4


@pytest.fixture
async def minute_history(services: Services) -> tuple[datetime, datetime]:
    """60,000 one-minute bars of BTCUSDT (one tick each), ending a minute ago."""
    count = 60_000
    end = floor_to_interval(datetime.now(UTC), KlineInterval.MINUTE_1)
    start = end - timedelta(minutes=count)
    rng = random.Random(3)
    level = 9_500_000  # in cents
    ticks = []
    for index in range(count):
        level = max(100, level + rng.randint(-900, 900))
        price = Decimal(level).scaleb(-2)
        moment = start + timedelta(minutes=index, seconds=30)
        ticks.append(Tick("BTCUSDT", moment, price, price, price, Decimal(1)))
    for offset in range(0, count, 10_000):
        await services.timeseries.write_ticks(ticks[offset : offset + 10_000])
    return start, end


async def test_a_long_backtest_does_not_block_the_event_loop(
    services: Services, minute_history: tuple[datetime, datetime]
) -> None:
    # given 60,000 stored 1m bars, loaded and validated
    start, end = minute_history
    given = request(
        symbol="BTCUSDT",
        interval=KlineInterval.MINUTE_1,
        start=start,
        end=end,
        parameters={"fast": 10, "slow": 30},
    )
    prepared, errors = await prepare_backtest(
        services.sessions, services.catalog, services.timeseries, given
    )
    assert errors == [] and prepared is not None and len(prepared.bars) == 60_000
    # when the backtest computes while another task counts its own turns
    computing = asyncio.create_task(compute_backtest(prepared))
    turns = 0
    while not computing.done():
        turns += 1
        await asyncio.sleep(0)
    result = await computing
    # then that task kept getting turns the whole time: a computation on the
    # loop's thread would have held it, leaving at most one or two turns
    assert turns >= 10, turns
    assert result.trade_count > 0 and len(result.equity) == 60_000
    # and the whole service call gives the same result
    outcome = await run_backtest(services.sessions, services.catalog, services.timeseries, given)
    assert outcome.result is not None
    assert outcome.result.final_equity == result.final_equity
