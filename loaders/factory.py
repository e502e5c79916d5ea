"""The loader set and its batch functions.

Names follow ``<entity>_by_<key>``; results come back in key order, ``None``
for a missing one-to-one and ``[]`` for an empty one-to-many.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property, partial
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


class Loaders:
    """The request's DataLoaders, each built the first time a resolver asks for it.

    A request uses one or two of them (a ``{ __typename }`` none), and building
    all eight with their batch functions was about 3 % of a trivial request.

    Parameters:
    sessions: where the batch functions read rows.
    timeseries: where quotes are read.
    cache: whether a loader remembers what it loaded (per HTTP request; never
        over a WebSocket, whose context lives as long as the connection).
    """

    def __init__(
        self, sessions: SessionFactory, timeseries: TimeSeriesStore, *, cache: bool = True
    ) -> None:
        self._sessions = sessions
        self._timeseries = timeseries
        self._cache = cache

    @cached_property
    def symbol_by_code(self) -> DataLoader[str, models.Symbol | None]:
        return DataLoader(load_fn=partial(_symbols, self._sessions), cache=self._cache)

    @cached_property
    def strategy_by_id(self) -> DataLoader[int, models.Strategy | None]:
        return DataLoader(load_fn=partial(_strategies, self._sessions), cache=self._cache)

    @cached_property
    def order_by_id(self) -> DataLoader[int, models.Order | None]:
        return DataLoader(load_fn=partial(_orders, self._sessions), cache=self._cache)

    @cached_property
    def quote_by_symbol(self) -> DataLoader[str, Tick | None]:
        return DataLoader(load_fn=partial(_quotes, self._timeseries), cache=self._cache)

    @cached_property
    def daily_bars_by_symbol(self) -> DataLoader[tuple[str, int], list[models.DailyBar]]:
        return DataLoader(load_fn=partial(_daily_bars, self._sessions), cache=self._cache)

    @cached_property
    def orders_by_strategy(self) -> DataLoader[LimitedKey, list[models.Order]]:
        return DataLoader(load_fn=partial(_strategy_orders, self._sessions), cache=self._cache)

    @cached_property
    def signals_by_strategy(self) -> DataLoader[LimitedKey, list[models.Signal]]:
        return DataLoader(load_fn=partial(_strategy_signals, self._sessions), cache=self._cache)

    @cached_property
    def trades_by_order(self) -> DataLoader[int, list[models.Trade]]:
        return DataLoader(load_fn=partial(_order_trades, self._sessions), cache=self._cache)


def create_loaders(
    sessions: SessionFactory, timeseries: TimeSeriesStore, *, cache: bool = True
) -> Loaders:
    return Loaders(sessions, timeseries, cache=cache)


async def _symbols(sessions: SessionFactory, codes: Sequence[str]) -> list[models.Symbol | None]:
    async with sessions() as session:
        rows = await symbol_repo.symbols_by_codes(session, codes)
    return _in_key_order(codes, {row.code: row for row in rows})


async def _strategies(sessions: SessionFactory, ids: Sequence[int]) -> list[models.Strategy | None]:
    async with sessions() as session:
        rows = await strategy_repo.strategies_by_ids(session, ids)
    return _in_key_order(ids, {row.id: row for row in rows})


async def _orders(sessions: SessionFactory, ids: Sequence[int]) -> list[models.Order | None]:
    async with sessions() as session:
        rows = await order_repo.orders_by_ids(session, ids)
    return _in_key_order(ids, {row.id: row for row in rows})


async def _quotes(timeseries: TimeSeriesStore, codes: Sequence[str]) -> list[Tick | None]:
    return _in_key_order(codes, await timeseries.latest_ticks(codes))


async def _daily_bars(
    sessions: SessionFactory, keys: Sequence[tuple[str, int]]
) -> list[list[models.DailyBar]]:
    async def fetch(codes: list[str], limit: int) -> dict[str, list[models.DailyBar]]:
        async with sessions() as session:
            return await symbol_repo.latest_daily_bars_by_codes(session, codes, limit)

    return await _by_limit(keys, fetch)


async def _strategy_orders(
    sessions: SessionFactory, keys: Sequence[LimitedKey]
) -> list[list[models.Order]]:
    async def fetch(ids: list[int], limit: int) -> dict[int, list[models.Order]]:
        async with sessions() as session:
            return await order_repo.latest_orders_by_strategy_ids(session, ids, limit)

    return await _by_limit(keys, fetch)


async def _strategy_signals(
    sessions: SessionFactory, keys: Sequence[LimitedKey]
) -> list[list[models.Signal]]:
    async def fetch(ids: list[int], limit: int) -> dict[int, list[models.Signal]]:
        async with sessions() as session:
            return await strategy_repo.latest_signals_by_strategy_ids(session, ids, limit)

    return await _by_limit(keys, fetch)


async def _order_trades(sessions: SessionFactory, ids: Sequence[int]) -> list[list[models.Trade]]:
    async with sessions() as session:
        rows = await account_repo.trades_for_orders(session, ids)
    grouped: dict[int, list[models.Trade]] = defaultdict(list)
    for row in rows:
        grouped[row.order_id].append(row)
    return [grouped.get(order_id, []) for order_id in ids]


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
