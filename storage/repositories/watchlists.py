"""Watchlists and their entries (symbols in list order)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models


async def lock_owner(session: AsyncSession, user_id: int) -> None:
    """Hold the user's row until the transaction ends (PostgreSQL; a no-op on SQLite).

    Serialises one user's watchlist changes across server processes, so the
    per-user limit and name uniqueness are checked against committed state and
    two concurrent edits of one list cannot lose each other's changes. SQLite
    runs one server process per database, whose own lock does the same.
    """
    await session.execute(select(models.User.id).where(models.User.id == user_id).with_for_update())


async def watchlist_for_user(
    session: AsyncSession, user_id: int, watchlist_id: int
) -> models.Watchlist | None:
    return await session.scalar(
        select(models.Watchlist).where(
            models.Watchlist.id == watchlist_id, models.Watchlist.user_id == user_id
        )
    )


async def watchlist_count(session: AsyncSession, user_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(models.Watchlist)
        .where(models.Watchlist.user_id == user_id)
    )
    return int(count or 0)


async def name_owner(session: AsyncSession, user_id: int, name_key: str) -> int | None:
    """The id of the user's watchlist with this name key, if any."""
    return await session.scalar(
        select(models.Watchlist.id).where(
            models.Watchlist.user_id == user_id, models.Watchlist.name_key == name_key
        )
    )


async def symbol_codes(session: AsyncSession, watchlist_id: int) -> list[str]:
    """The list's symbol codes in order."""
    result = await session.scalars(
        select(models.WatchlistEntry.symbol_code)
        .where(models.WatchlistEntry.watchlist_id == watchlist_id)
        .order_by(models.WatchlistEntry.position)
    )
    return list(result)


async def owned_symbol_codes(
    session: AsyncSession, user_id: int, watchlist_id: int
) -> list[str] | None:
    """The list's symbol codes in order, or None when the user has no such list;
    one statement (the live quotes stream re-reads this on every change)."""
    entry = models.WatchlistEntry
    rows = (
        await session.execute(
            select(models.Watchlist.id, entry.symbol_code)
            .outerjoin(entry, entry.watchlist_id == models.Watchlist.id)
            .where(models.Watchlist.id == watchlist_id, models.Watchlist.user_id == user_id)
            .order_by(entry.position)
        )
    ).all()
    if not rows:
        return None
    return [row.symbol_code for row in rows if row.symbol_code is not None]


async def watchlists_with_symbols(
    session: AsyncSession, user_id: int, watchlist_id: int | None = None
) -> list[tuple[models.Watchlist, list[str]]]:
    """The user's watchlists (oldest first), or the one with ``watchlist_id``, each with
    its symbol codes in order: one statement however many lists and symbols."""
    entry = models.WatchlistEntry
    query = (
        select(models.Watchlist, entry.symbol_code)
        .outerjoin(entry, entry.watchlist_id == models.Watchlist.id)
        .where(models.Watchlist.user_id == user_id)
        .order_by(models.Watchlist.id, entry.position)
    )
    if watchlist_id is not None:
        query = query.where(models.Watchlist.id == watchlist_id)
    lists: dict[int, tuple[models.Watchlist, list[str]]] = {}
    for watchlist, code in await session.execute(query):
        _, codes = lists.setdefault(watchlist.id, (watchlist, []))
        if code is not None:
            codes.append(code)
    return list(lists.values())


async def replace_symbols(session: AsyncSession, watchlist_id: int, codes: Sequence[str]) -> None:
    """Make ``codes`` the list's symbols, in that order (positions 0 … n-1)."""
    await session.execute(
        delete(models.WatchlistEntry).where(models.WatchlistEntry.watchlist_id == watchlist_id)
    )
    if codes:
        await session.execute(
            insert(models.WatchlistEntry),
            [
                {"watchlist_id": watchlist_id, "symbol_code": code, "position": position}
                for position, code in enumerate(codes)
            ],
        )
