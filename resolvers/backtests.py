"""Backtests: ``runBacktest`` (optionally saving the run) and the saved runs."""

from __future__ import annotations

from graphql_api.platform.errors import UserError
from graphql_api.strategies.backtest import BacktestResult, saved
from graphql_api.strategies.backtest import service as backtests
from resolvers.context import Info
from resolvers.pagination import Page, Paging, parse_id, read_page


async def run_backtest(info: Info, request: backtests.BacktestRequest) -> backtests.BacktestOutcome:
    services = info.context.services
    return await backtests.run_backtest(
        services.sessions, services.catalog, services.timeseries, request
    )


async def save_backtest(
    info: Info, name: str, request: backtests.BacktestRequest, result: BacktestResult
) -> saved.SaveOutcome:
    store = saved.SavedBacktests(info.context.services.sessions)
    return await store.save(info.context.user_id, name, request, result)


async def saved_backtest(info: Info, backtest_id: str) -> saved.SavedBacktest | None:
    store = saved.SavedBacktests(info.context.services.sessions)
    return await store.get(info.context.user_id, parse_id(backtest_id))


async def saved_backtests(
    info: Info, symbol: str | None, kind: str | None, paging: Paging
) -> Page[saved.SavedBacktest]:
    window = paging.window("backtest", info.context.services.settings.max_page_size)
    query = saved.saved_query(info.context.user_id, symbol=symbol, kind=kind)
    page = await read_page(info.context.services.sessions, query, saved.SAVED_LIST, window)
    return Page(
        [saved.from_row(row) for row in page.items],
        page.has_next_page,
        page.has_previous_page,
        page.total_count,
    )


async def delete_backtest(info: Info, backtest_id: str) -> list[UserError]:
    store = saved.SavedBacktests(info.context.services.sessions)
    return await store.delete(info.context.user_id, parse_id(backtest_id))
