"""The loader set and its batch functions.

Names follow ``<entity>_by_<key>``; results come back in key order, ``None``
for a missing one-to-one and ``[]`` for an empty one-to-many.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from strawberry.dataloader import DataLoader

from storage import models
from storage.engine import SessionFactory
from storage.repositories import accounts as account_repo
from storage.repositories import orders as order_repo
from storage.repositories import strategies as strategy_repo
from storage.repositories import symbols as symbol_repo
from storage.timeseries import Tick, TimeSeriesStore

K = TypeVar("K")
R = TypeVar("R")
LimitedKey = tuple[int, int]  # (parent id, how many)


@dataclass(frozen=True, slots=True)
class Loaders:
    symbol_by_code: DataLoader[str, models.Symbol | None]
    strategy_by_id: DataLoader[int, models.Strategy | None]
    order_by_id: DataLoader[int, models.Order | None]
    quote_by_symbol: DataLoader[str, Tick | None]
    daily_bars_by_symbol: DataLoader[tuple[str, int], list[models.DailyBar]]
    orders_by_strategy: DataLoader[LimitedKey, list[models.Order]]
    signals_by_strategy: DataLoader[LimitedKey, list[models.Signal]]
    trades_by_order: DataLoader[int, list[models.Trade]]


def create_loaders(
    sessions: SessionFactory, timeseries: TimeSeriesStore, *, cache: bool = True
) -> Loaders:
    async def symbols(codes: Sequence[str]) -> list[models.Symbol | None]:
        async with sessions() as session:
            rows = await symbol_repo.symbols_by_codes(session, codes)
        return _in_key_order(codes, {row.code: row for row in rows})

    async def strategies(ids: Sequence[int]) -> list[models.Strategy | None]:
        async with sessions() as session:
            rows = await strategy_repo.strategies_by_ids(session, ids)
        return _in_key_order(ids, {row.id: row for row in rows})

    async def orders(ids: Sequence[int]) -> list[models.Order | None]:
        async with sessions() as session:
            rows = await order_repo.orders_by_ids(session, ids)
        return _in_key_order(ids, {row.id: row for row in rows})

    async def quotes(codes: Sequence[str]) -> list[Tick | None]:
        return _in_key_order(codes, await timeseries.latest_ticks(codes))

    async def daily_bars(keys: Sequence[tuple[str, int]]) -> list[list[models.DailyBar]]:
        async def fetch(codes: list[str], limit: int) -> dict[str, list[models.DailyBar]]:
            async with sessions() as session:
                return await symbol_repo.latest_daily_bars_by_codes(session, codes, limit)

        return await _by_limit(keys, fetch)

    async def strategy_orders(keys: Sequence[LimitedKey]) -> list[list[models.Order]]:
        async def fetch(ids: list[int], limit: int) -> dict[int, list[models.Order]]:
            async with sessions() as session:
                return await order_repo.latest_orders_by_strategy_ids(session, ids, limit)

        return await _by_limit(keys, fetch)

    async def strategy_signals(keys: Sequence[LimitedKey]) -> list[list[models.Signal]]:
        async def fetch(ids: list[int], limit: int) -> dict[int, list[models.Signal]]:
            async with sessions() as session:
                return await strategy_repo.latest_signals_by_strategy_ids(session, ids, limit)

        return await _by_limit(keys, fetch)

    async def order_trades(ids: Sequence[int]) -> list[list[models.Trade]]:
        async with sessions() as session:
            rows = await account_repo.trades_for_orders(session, ids)
        grouped: dict[int, list[models.Trade]] = defaultdict(list)
        for row in rows:
            grouped[row.order_id].append(row)
        return [grouped.get(order_id, []) for order_id in ids]

    return Loaders(
        symbol_by_code=DataLoader(load_fn=symbols, cache=cache),
        strategy_by_id=DataLoader(load_fn=strategies, cache=cache),
        order_by_id=DataLoader(load_fn=orders, cache=cache),
        quote_by_symbol=DataLoader(load_fn=quotes, cache=cache),
        daily_bars_by_symbol=DataLoader(load_fn=daily_bars, cache=cache),
        orders_by_strategy=DataLoader(load_fn=strategy_orders, cache=cache),
        signals_by_strategy=DataLoader(load_fn=strategy_signals, cache=cache),
        trades_by_order=DataLoader(load_fn=order_trades, cache=cache),
    )


def _in_key_order(keys: Sequence[K], found: dict[K, R]) -> list[R | None]:
    return [found.get(key) for key in keys]


async def _by_limit(
    keys: Sequence[tuple[K, int]],
    fetch: Callable[[list[K], int], Awaitable[dict[K, list[R]]]],
) -> list[list[R]]:
    """One query per distinct limit (almost always exactly one)."""
    by_limit: dict[int, list[K]] = defaultdict(list)
    for parent, limit in keys:
        by_limit[limit].append(parent)
    results: dict[tuple[K, int], list[R]] = {}
    for limit, parents in by_limit.items():
        found = await fetch(parents, limit)
        for parent in parents:
            results[(parent, limit)] = found.get(parent, [])
    return [results[key] for key in keys]
