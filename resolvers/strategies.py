"""Strategy resolvers: reads scoped to the caller, strategy kinds, and the strategy
mutations (create, update, delete, start, stop)."""

from __future__ import annotations

from datetime import datetime

from graphql_api.strategies import lifecycle as strategy_lifecycle
from graphql_api.strategies.definitions import StrategyDraft, StrategyOutcome
from graphql_api.strategies.rules import PARAMETER_SPECS, ParameterSpec
from graphql_api.trading.order_types import OrderSide
from loaders.known import known
from resolvers.context import Info
from resolvers.pagination import (
    Page,
    Paging,
    check_page_size,
    check_time_range,
    parse_id,
    read_page,
)
from storage import models
from storage.repositories import strategies as strategy_repo


async def strategy(info: Info, strategy_id: str) -> models.Strategy | None:
    found = await info.context.loaders.strategy_by_id.load(parse_id(strategy_id))
    return found if found is not None and found.user_id == info.context.user_id else None


def known_strategy(info: Info, strategy_id: int) -> models.Strategy | None:
    """The strategy row if this request's loader already has it (prefetched), else None."""
    row = known(info.context.loaders.strategy_by_id, strategy_id)
    return row if isinstance(row, models.Strategy) else None


async def strategy_by_id(info: Info, strategy_id: int) -> models.Strategy | None:
    """For nested fields (``Order.strategy``): the parent already belongs to the caller."""
    return await info.context.loaders.strategy_by_id.load(strategy_id)


async def strategies(info: Info, paging: Paging) -> Page[models.Strategy]:
    window = paging.window("strategy", info.context.services.settings.max_page_size)
    query = strategy_repo.strategies_query(info.context.user_id)
    page = await read_page(
        info.context.services.sessions, query, strategy_repo.STRATEGY_LIST, window
    )
    for row in page.items:
        info.context.loaders.strategy_by_id.prime(row.id, row)
    return page


def signal_filter(
    strategy_id: str | None,
    symbol: str | None,
    side: OrderSide | None,
    bar_from: datetime | None,
    bar_to: datetime | None,
) -> strategy_repo.SignalFilter:
    """The ``signals`` arguments as a filter (a strategy id that is not ours matches nothing)."""
    check_time_range(bar_from, bar_to)
    return strategy_repo.SignalFilter(
        strategy_id=parse_id(strategy_id, "strategyId") if strategy_id is not None else None,
        symbol_code=symbol.upper() if symbol else None,
        side=side.value if side is not None else None,
        bar_from=bar_from,
        bar_to=bar_to,
    )


async def signal_history(
    info: Info, filters: strategy_repo.SignalFilter, paging: Paging
) -> Page[models.Signal]:
    window = paging.window("signal", info.context.services.settings.max_page_size)
    query = strategy_repo.signals_query(info.context.user_id, filters)
    return await read_page(info.context.services.sessions, query, strategy_repo.SIGNAL_LIST, window)


async def signals(info: Info, strategy_id: int, first: int) -> list[models.Signal]:
    first = check_page_size(first, info.context.services.settings.max_page_size)
    return await info.context.loaders.signals_by_strategy.load((strategy_id, first))


async def create_strategy(info: Info, draft: StrategyDraft) -> StrategyOutcome:
    return await info.context.services.strategies.create(info.context.user_id, draft)


async def update_strategy(info: Info, strategy_id: str, draft: StrategyDraft) -> StrategyOutcome:
    return await info.context.services.strategies.update(
        info.context.user_id, parse_id(strategy_id), draft
    )


async def delete_strategy(info: Info, strategy_id: str) -> StrategyOutcome:
    return await info.context.services.strategies.delete(
        info.context.user_id, parse_id(strategy_id)
    )


def strategy_kinds() -> list[tuple[str, tuple[ParameterSpec, ...]]]:
    return list(PARAMETER_SPECS.items())


async def start_strategy(info: Info, strategy_id: str) -> StrategyOutcome:
    services = info.context.services
    return await strategy_lifecycle.start_strategy(
        services.sessions, services.outbox, info.context.user_id, parse_id(strategy_id)
    )


async def stop_strategy(info: Info, strategy_id: str) -> StrategyOutcome:
    services = info.context.services
    return await strategy_lifecycle.stop_strategy(
        services.sessions, services.outbox, info.context.user_id, parse_id(strategy_id)
    )
