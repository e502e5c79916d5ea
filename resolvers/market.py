"""Market data resolvers: symbols, quotes, ticks and klines."""

from __future__ import annotations

from datetime import UTC, datetime

from loaders.known import known
from resolvers.amounts import amounts
from resolvers.context import Info
from resolvers.errors import bad_user_input
from resolvers.pagination import Page, Paging, check_time_range, read_page
from storage import models
from storage.repositories import symbols as symbol_repo
from storage.timeseries import AmountPlaces, Bar, BarText, KlineInterval, Tick
from storage.timeseries.buckets import day_range_for_bars


def session_moment(value: datetime | None, argument: str) -> datetime:
    """A session field's instant argument: now when omitted; it must carry an offset."""
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None:
        raise bad_user_input(
            f"{argument} must carry a UTC offset, e.g. 2026-03-09T13:30:00Z", argument=argument
        )
    return value


def known_symbol(info: Info, code: str) -> models.Symbol | None:
    """The symbol row if this request's loader already has it (prefetched), else None."""
    row = known(info.context.loaders.symbol_by_code, code)
    return row if isinstance(row, models.Symbol) else None


async def symbol(info: Info, code: str) -> models.Symbol | None:
    return await info.context.loaders.symbol_by_code.load(code.upper())


async def symbols(
    info: Info, search: str | None, exchange: str | None, paging: Paging
) -> Page[models.Symbol]:
    window = paging.window("symbol", info.context.services.settings.max_page_size, int_keys=False)
    query = symbol_repo.symbols_query(search=search, exchange=exchange)
    page = await read_page(info.context.services.sessions, query, symbol_repo.SYMBOL_LIST, window)
    for row in page.items:
        info.context.loaders.symbol_by_code.prime(row.code, row)
    return page


async def exchanges(info: Info) -> list[str]:
    async with info.context.services.sessions() as session:
        return await symbol_repo.exchanges(session)


async def quote(info: Info, code: str) -> Tick | None:
    return await info.context.loaders.quote_by_symbol.load(code.upper())


async def ticks(
    info: Info, code: str, start: datetime | None, end: datetime | None, limit: int
) -> list[Tick]:
    check_series_arguments(info, start, end, limit)
    return await info.context.services.timeseries.ticks(code.upper(), start, end, limit)


async def klines(
    info: Info,
    code: str,
    interval: KlineInterval,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[Bar]:
    check_series_arguments(info, start, end, limit)
    code = code.upper()
    services = info.context.services
    if interval.is_intraday:
        return await services.timeseries.klines(code, interval, start, end, limit)
    days = day_range_for_bars(start, end)
    if days is None:
        return []
    async with services.sessions() as session:
        rows = await symbol_repo.daily_bars(session, code, start=days[0], end=days[1], limit=limit)
    return [symbol_repo.daily_bar_to_bar(row) for row in rows]


async def kline_texts(
    info: Info,
    code: str,
    interval: KlineInterval,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[BarText]:
    """:func:`klines` written as text at the symbol's scales, for an answer written
    straight to JSON (the compiled read path): the same checks and the same bars."""
    scale = amounts(info)
    places = AmountPlaces(scale.price_places(code.upper()), scale.quantity_places(code.upper()))
    if not interval.is_intraday:
        bars = await klines(info, code, interval, start, end, limit)
        return [BarText.of(bar, places) for bar in bars]
    check_series_arguments(info, start, end, limit)
    return await info.context.services.timeseries.kline_texts(
        code.upper(), interval, start, end, limit, places
    )


async def daily_bars(info: Info, code: str, limit: int) -> list[Bar]:
    cap = info.context.services.settings.max_series_limit
    if not 1 <= limit <= cap:
        raise bad_user_input(f"limit must be between 1 and {cap}", argument="limit")
    rows = await info.context.loaders.daily_bars_by_symbol.load((code, limit))
    return [symbol_repo.daily_bar_to_bar(row) for row in rows]


def check_series_arguments(
    info: Info, start: datetime | None, end: datetime | None, limit: int
) -> None:
    """What ``ticks``, ``klines`` and ``klineSeries`` refuse: a limit outside
    ``1..MAX_SERIES_LIMIT`` and a range whose ``from`` is not before ``to``."""
    cap = info.context.services.settings.max_series_limit
    if not 1 <= limit <= cap:
        raise bad_user_input(f"limit must be between 1 and {cap}", argument="limit")
    check_time_range(start, end)
