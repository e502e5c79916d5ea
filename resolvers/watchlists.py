"""Watchlist resolvers: the caller's lists, their symbols through the loaders, the
watchlist mutations, and the live quotes of one list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing

from graphql import GraphQLError

from graphql_api.watchlists.lists import WatchlistContents, WatchlistOutcome, read_watchlists
from graphql_api.watchlists.live import WatchlistNotFoundError, WatchlistQuote, watchlist_quotes
from loaders.known import MISSING, known
from resolvers.context import Info
from resolvers.lookahead import selects
from resolvers.pagination import parse_id
from storage import models


async def watchlists(info: Info) -> list[WatchlistContents]:
    found = await read_watchlists(info.context.services.sessions, info.context.user_id)
    await _prefetch_symbols(info, found)
    return found


async def watchlist(info: Info, watchlist_id: str) -> WatchlistContents | None:
    found = await read_watchlists(
        info.context.services.sessions, info.context.user_id, parse_id(watchlist_id)
    )
    await _prefetch_symbols(info, found)
    return found[0] if found else None


async def _prefetch_symbols(info: Info, found: list[WatchlistContents]) -> None:
    """Load every list's symbols now, in one batch, so that ``Watchlist.symbols``
    answers from the loader without an await per list; every ``Symbol.quote`` below
    then starts in the same pass and their quotes are read in one batch too."""
    loader = info.context.loaders.symbol_by_code
    if loader.cache and selects(info, "symbols"):
        await loader.load_many(sorted({code for contents in found for code in contents.symbols}))


def known_symbols(info: Info, codes: Sequence[str]) -> list[models.Symbol] | None:
    """A list's symbols, in its order, if this request's loader has them all, else None."""
    rows: list[models.Symbol] = []
    for code in codes:
        row = known(info.context.loaders.symbol_by_code, code)
        if row is MISSING:
            return None
        if isinstance(row, models.Symbol):
            rows.append(row)
    return rows


async def symbols(info: Info, codes: Sequence[str]) -> list[models.Symbol]:
    """A list's symbols, in its order, through the loader (batched with other lists')."""
    rows = await info.context.loaders.symbol_by_code.load_many(codes)
    return [row for row in rows if row is not None]


async def create_watchlist(info: Info, name: str, symbols: Sequence[str]) -> WatchlistOutcome:
    return await info.context.services.watchlists.create(info.context.user_id, name, symbols)


async def rename_watchlist(info: Info, watchlist_id: str, name: str) -> WatchlistOutcome:
    return await info.context.services.watchlists.rename(
        info.context.user_id, parse_id(watchlist_id), name
    )


async def add_to_watchlist(
    info: Info, watchlist_id: str, symbols: Sequence[str], position: int | None
) -> WatchlistOutcome:
    return await info.context.services.watchlists.add(
        info.context.user_id, parse_id(watchlist_id), symbols, position
    )


async def remove_from_watchlist(
    info: Info, watchlist_id: str, symbols: Sequence[str]
) -> WatchlistOutcome:
    return await info.context.services.watchlists.remove(
        info.context.user_id, parse_id(watchlist_id), symbols
    )


async def reorder_watchlist(
    info: Info, watchlist_id: str, symbols: Sequence[str]
) -> WatchlistOutcome:
    return await info.context.services.watchlists.reorder(
        info.context.user_id, parse_id(watchlist_id), symbols
    )


async def delete_watchlist(info: Info, watchlist_id: str) -> WatchlistOutcome:
    return await info.context.services.watchlists.delete(
        info.context.user_id, parse_id(watchlist_id)
    )


async def quote_stream(info: Info, watchlist_id: str) -> AsyncIterator[WatchlistQuote]:
    """A list that is not the caller's is NOT_FOUND, as one that does not exist."""
    services = info.context.services
    wanted = parse_id(watchlist_id)
    stream = watchlist_quotes(
        services.sessions, services.hub, services.timeseries, info.context.user_id, wanted
    )
    try:
        async with aclosing(stream):
            async for quote in stream:
                yield quote
    except WatchlistNotFoundError:
        raise GraphQLError("watchlist not found", extensions={"code": "NOT_FOUND"}) from None
