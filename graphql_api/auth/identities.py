"""Who a user id is now: their role and name from the database, cached briefly.

A token names a user; what that user may do is the database's answer, never
the token's (a token's claims outlive a role change, and an edited claim must
not matter). Answers are kept ``ttl`` seconds so the hot path rarely queries;
a role change or a removal is announced on the bus and every process drops
its entry at once, the TTL being the backstop when a message is lost.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from graphql_api.auth.principal import Role
from storage.engine import SessionFactory
from storage.repositories import users as user_repo


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    username: str
    role: Role
    created_at: datetime


class IdentityCache:
    """Parameters:
    sessions: database sessions.
    ttl: seconds an answer is kept.
    max_entries: the least recently used are forgotten past this.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        ttl: float = 5.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[int, tuple[float, Identity]] = OrderedDict()
        self._forgotten = 0  # bumped by forget(): an answer read before it is stale

    async def get(self, user_id: int) -> Identity | None:
        """The user as the database has them, or None when there is no such user."""
        cached = self._entries.pop(user_id, None)
        now = self._clock()
        if cached is not None and now - cached[0] < self._ttl:
            self._entries[user_id] = cached
            return cached[1]
        forgotten = self._forgotten
        try:
            async with self._sessions() as session:
                row = await user_repo.user_by_id(session, user_id)
        except Exception:
            if cached is None:
                raise
            # The database is away: a known user keeps their last known role meanwhile
            # (a change published on the bus still drops it).
            self._entries[user_id] = cached
            return cached[1]
        identity = (
            Identity(row.id, row.username, Role(row.role), row.created_at)
            if row is not None
            else None
        )
        if identity is None or forgotten != self._forgotten:
            # Nothing is remembered about a missing user: SQLite may give their id to
            # the next user registered. Nor is an answer that changed while we read.
            return identity
        self._entries[user_id] = (now, identity)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return identity

    def forget(self, user_id: int) -> None:
        self._forgotten += 1
        self._entries.pop(user_id, None)
