"""Watchlists: create, rename, add, remove, reorder, delete — each one transaction.

A watchlist belongs to one user; someone else's list is NOT_FOUND, exactly like
a list that does not exist. Rules, all refused as user errors with nothing
changed:

- names: 1 to :data:`MAX_NAME_LENGTH` characters once trimmed, no control or
  invisible characters (:func:`~graphql_api.platform.names.check_name`), unique
  per user ignoring case and Unicode width (``CONFLICT``);
- symbols: codes are upper-cased; a code not in the catalogue is
  ``UNKNOWN_SYMBOL``; a symbol is on a list at most once: adding one that is
  already there (or naming it twice) keeps it where it is, so retrying an add is
  harmless, and removing one that is not there is not an error either;
- limits: at most ``max_watchlists`` lists per user and ``max_symbols`` symbols
  per list (``OUT_OF_RANGE``);
- reorder takes the whole new order, which must be exactly the list's symbols,
  each once (``INVALID`` otherwise: the list changed under the client).

Every change stages an id event on :func:`~graphql_api.realtime.channels.watchlist_channel`
in its own transaction (:mod:`graphql_api.realtime.outbox`), which live quote streams
(:mod:`.live`) follow. One user's changes are serialised (a lock per user in this
process, the user's row on PostgreSQL across processes), so limits and names
are checked against committed state and concurrent edits never lose one another.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.market.symbols import SymbolCatalog
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.names import check_name
from graphql_api.realtime.channels import watchlist_channel
from graphql_api.realtime.events import encode_id_event
from graphql_api.realtime.outbox import EventOutbox
from storage import models
from storage.engine import SessionFactory
from storage.repositories import watchlists as watchlist_repo

__all__ = [
    "MAX_NAME_LENGTH",
    "WatchlistContents",
    "WatchlistOutcome",
    "WatchlistService",
    "read_watchlists",
]

MAX_NAME_LENGTH = 128


@dataclass(frozen=True, slots=True)
class WatchlistContents:
    """A watchlist as it is stored: its fields and its symbol codes in order."""

    id: int
    name: str
    symbols: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: models.Watchlist, codes: Sequence[str]) -> WatchlistContents:
        return cls(row.id, row.name, tuple(codes), row.created_at, row.updated_at)


@dataclass(frozen=True, slots=True)
class WatchlistOutcome:
    """The list after the change (before it, for a delete); None with errors."""

    watchlist: WatchlistContents | None
    errors: list[UserError]


# A change to a list's symbols: the new order, or why it is refused.
Change = Callable[[list[str]], tuple[list[str], list[UserError]]]


async def read_watchlists(
    sessions: SessionFactory, user_id: int, watchlist_id: int | None = None
) -> list[WatchlistContents]:
    """The user's watchlists, oldest first (or the one with ``watchlist_id``, if theirs)."""
    async with sessions() as session:
        found = await watchlist_repo.watchlists_with_symbols(session, user_id, watchlist_id)
    return [WatchlistContents.from_row(row, codes) for row, codes in found]


class WatchlistService:
    """Changes to watchlists (see the module docstring for the rules).

    Parameters:
        sessions: the relational database.
        catalog: the symbols that exist.
        outbox: where change events are staged, in each change's transaction.
        max_watchlists: lists one user may have.
        max_symbols: symbols one list may hold.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        catalog: SymbolCatalog,
        outbox: EventOutbox,
        *,
        max_watchlists: int,
        max_symbols: int,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._outbox = outbox
        self.max_watchlists = max_watchlists
        self.max_symbols = max_symbols
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def create(self, user_id: int, name: str, symbols: Sequence[str]) -> WatchlistOutcome:
        codes, errors = await self._known_symbols(symbols, required=False)
        errors = check_name("name", name, max_length=MAX_NAME_LENGTH) + errors
        if len(codes) > self.max_symbols:
            errors.append(self._too_many())
        if errors:
            return WatchlistOutcome(None, errors)
        async with self._user_locks[user_id], self._sessions() as session:
            await watchlist_repo.lock_owner(session, user_id)
            if await watchlist_repo.watchlist_count(session, user_id) >= self.max_watchlists:
                return _refused(
                    UserError(
                        "name",
                        ErrorCode.OUT_OF_RANGE,
                        f"you have {self.max_watchlists} watchlists, the most allowed; "
                        "delete one first",
                    )
                )
            conflict = await self._name_conflict(session, user_id, name, None)
            if conflict is not None:
                return _refused(conflict)
            now = datetime.now(UTC)
            row = models.Watchlist(
                user_id=user_id, name=name.strip(), created_at=now, updated_at=now
            )
            session.add(row)
            await session.flush()
            await watchlist_repo.replace_symbols(session, row.id, codes)
            self._announce(session, user_id, row.id, "created")
            await session.commit()
        return WatchlistOutcome(WatchlistContents.from_row(row, codes), [])

    async def rename(self, user_id: int, watchlist_id: int, name: str) -> WatchlistOutcome:
        errors = check_name("name", name, max_length=MAX_NAME_LENGTH)
        if errors:
            return WatchlistOutcome(None, errors)
        async with self._user_locks[user_id], self._sessions() as session:
            await watchlist_repo.lock_owner(session, user_id)
            row = await watchlist_repo.watchlist_for_user(session, user_id, watchlist_id)
            if row is None:
                return _not_found()
            conflict = await self._name_conflict(session, user_id, name, watchlist_id)
            if conflict is not None:
                return _refused(conflict)
            if row.name != name.strip():
                row.name = name.strip()
                row.updated_at = datetime.now(UTC)
                self._announce(session, user_id, row.id, "renamed")
                await session.commit()
            codes = await watchlist_repo.symbol_codes(session, watchlist_id)
        return WatchlistOutcome(WatchlistContents.from_row(row, codes), [])

    async def add(
        self, user_id: int, watchlist_id: int, symbols: Sequence[str], position: int | None
    ) -> WatchlistOutcome:
        """Insert the symbols not yet on the list at ``position`` (the end when None)."""
        codes, errors = await self._known_symbols(symbols, required=True)
        if errors:
            return WatchlistOutcome(None, errors)

        def change(current: list[str]) -> tuple[list[str], list[UserError]]:
            at = len(current) if position is None else position
            if not 0 <= at <= len(current):
                return current, [
                    UserError(
                        "position",
                        ErrorCode.OUT_OF_RANGE,
                        f"position must be between 0 and {len(current)} (the list's length)",
                    )
                ]
            new = [code for code in codes if code not in current]
            if len(current) + len(new) > self.max_symbols:
                return current, [self._too_many()]
            return [*current[:at], *new, *current[at:]], []

        return await self._edit(user_id, watchlist_id, change)

    async def remove(
        self, user_id: int, watchlist_id: int, symbols: Sequence[str]
    ) -> WatchlistOutcome:
        """Take the symbols off the list; ones not on it are ignored."""
        codes, errors = await self._known_symbols(symbols, required=True)
        if errors:
            return WatchlistOutcome(None, errors)
        gone = set(codes)
        return await self._edit(
            user_id, watchlist_id, lambda current: ([c for c in current if c not in gone], [])
        )

    async def reorder(
        self, user_id: int, watchlist_id: int, symbols: Sequence[str]
    ) -> WatchlistOutcome:
        """Put the list in the order of ``symbols``, which must be its symbols, each once."""
        if len(symbols) > self.max_symbols:
            return _refused(self._too_many())
        order = [code.upper() for code in symbols]

        def change(current: list[str]) -> tuple[list[str], list[UserError]]:
            problem = _not_a_permutation(order, current)
            if problem is not None:
                return current, [UserError("symbols", ErrorCode.INVALID, problem)]
            return order, []

        return await self._edit(user_id, watchlist_id, change)

    async def delete(self, user_id: int, watchlist_id: int) -> WatchlistOutcome:
        async with self._user_locks[user_id], self._sessions() as session:
            await watchlist_repo.lock_owner(session, user_id)
            row = await watchlist_repo.watchlist_for_user(session, user_id, watchlist_id)
            if row is None:
                return _not_found()
            contents = WatchlistContents.from_row(
                row, await watchlist_repo.symbol_codes(session, watchlist_id)
            )
            # The entries go with it (ON DELETE CASCADE).
            await session.execute(
                delete(models.Watchlist).where(models.Watchlist.id == watchlist_id)
            )
            self._announce(session, user_id, watchlist_id, "deleted")
            await session.commit()
        return WatchlistOutcome(contents, [])

    async def _edit(self, user_id: int, watchlist_id: int, change: Change) -> WatchlistOutcome:
        async with self._user_locks[user_id], self._sessions() as session:
            await watchlist_repo.lock_owner(session, user_id)
            row = await watchlist_repo.watchlist_for_user(session, user_id, watchlist_id)
            if row is None:
                return _not_found()
            current = await watchlist_repo.symbol_codes(session, watchlist_id)
            codes, errors = change(current)
            if errors:
                return WatchlistOutcome(None, errors)
            if codes != current:
                await watchlist_repo.replace_symbols(session, watchlist_id, codes)
                row.updated_at = datetime.now(UTC)
                self._announce(session, user_id, watchlist_id, "changed")
                await session.commit()
        return WatchlistOutcome(WatchlistContents.from_row(row, codes), [])

    async def _known_symbols(
        self, symbols: Sequence[str], *, required: bool
    ) -> tuple[list[str], list[UserError]]:
        """The upper-cased codes, each once in first-seen order, and the unknown ones
        as errors (``symbols.<index>``)."""
        if required and not symbols:
            return [], [UserError("symbols", ErrorCode.REQUIRED, "name at least one symbol")]
        if len(symbols) > self.max_symbols:
            return [], [self._too_many()]
        upper = [code.upper() for code in symbols]
        codes = list(dict.fromkeys(upper))
        known = await self._catalog.get_many(codes)
        errors = [
            UserError(f"symbols.{index}", ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {code!r}")
            for index, code in enumerate(upper)
            if code not in known
        ]
        return codes, errors

    def _too_many(self) -> UserError:
        return UserError(
            "symbols",
            ErrorCode.OUT_OF_RANGE,
            f"a watchlist holds at most {self.max_symbols} symbols",
        )

    async def _name_conflict(
        self, session: AsyncSession, user_id: int, name: str, watchlist_id: int | None
    ) -> UserError | None:
        owner = await watchlist_repo.name_owner(session, user_id, models.watchlist_name_key(name))
        if owner is None or owner == watchlist_id:
            return None
        return UserError(
            "name", ErrorCode.CONFLICT, f"you already have a watchlist named {name.strip()!r}"
        )

    def _announce(self, session: AsyncSession, user_id: int, watchlist_id: int, what: str) -> None:
        self._outbox.stage(
            session,
            watchlist_channel(user_id),
            encode_id_event("watchlist", watchlist_id, change=what),
        )


def _not_a_permutation(order: list[str], current: list[str]) -> str | None:
    """Why ``order`` is not the symbols of ``current`` each once, or None if it is."""
    on_list = set(current)
    repeated = [code for code, times in Counter(order).items() if times > 1]
    strangers = [code for code in dict.fromkeys(order) if code not in on_list]
    named = set(order)
    missing = [code for code in current if code not in named]
    reasons = []
    if repeated:
        reasons.append(f"named more than once: {', '.join(repeated)}")
    if strangers:
        reasons.append(f"not on the list: {', '.join(strangers)}")
    if missing:
        reasons.append(f"missing: {', '.join(missing)}")
    if not reasons:
        return None
    return (
        "symbols must be the list's symbols, each once, in the new order ("
        + "; ".join(reasons)
        + ")"
    )


def _refused(error: UserError) -> WatchlistOutcome:
    return WatchlistOutcome(None, [error])


def _not_found() -> WatchlistOutcome:
    return _refused(UserError("id", ErrorCode.NOT_FOUND, "watchlist not found"))
