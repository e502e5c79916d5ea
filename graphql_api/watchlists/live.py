"""The live quotes of one watchlist, following edits to the list as they happen.

:func:`watchlist_quotes` first gives every symbol on the list, in list order, with
its latest known tick (or none yet); then each new tick of a symbol on the list.
When the list changes (any change event on the owner's
:func:`~graphql_api.realtime.channels.watchlist_channel`, staged by
:mod:`.lists` in the change's transaction) it re-reads the list and moves its
one hub mailbox to the new set of tick channels, without a gap on the channels
it keeps:

- an added symbol is announced with its latest tick (a snapshot) and its place;
- a removed one with ``position=None`` (``on_watchlist`` false), after which
  none of its ticks follow, not even one that was already waiting;
- a reorder re-announces every symbol whose place changed, with its last tick;
- a deleted list ends the stream (the subscription completes).

A list that does not exist, or is someone else's, is :class:`WatchlistNotFoundError`
at the start. Change events are conflated with ticks in one mailbox: whatever
events a slow reader missed, the list it re-reads is the current one. When the
bus reconnected (events may be lost) the list is re-read and every symbol's
latest tick that is newer than the last one delivered is given again.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from graphql_api.platform.resilience import as_service_unavailable
from graphql_api.realtime.channels import tick_channel, watchlist_channel
from graphql_api.realtime.events import decode_tick
from graphql_api.realtime.hub import RESYNC, Hub, Mailbox
from storage.engine import SessionFactory
from storage.repositories import watchlists as watchlist_repo
from storage.timeseries import Tick, TimeSeriesStore

__all__ = ["WatchlistNotFoundError", "WatchlistQuote", "watchlist_quotes"]


class WatchlistNotFoundError(LookupError):
    """The watchlist does not exist for this user (missing, or someone else's)."""


@dataclass(frozen=True, slots=True)
class WatchlistQuote:
    """One symbol of the list: where it stands now and its latest tick.

    ``position`` is its 0-based place on the list, None once it left the list;
    ``tick`` is None before its first tick and once it left the list.
    """

    symbol: str
    position: int | None
    tick: Tick | None


async def watchlist_quotes(
    sessions: SessionFactory,
    hub: Hub,
    timeseries: TimeSeriesStore,
    user_id: int,
    watchlist_id: int,
) -> AsyncGenerator[WatchlistQuote, None]:
    """See the module docstring."""
    changes = watchlist_channel(user_id)
    # Listen for changes before the first read, so no change falls between the two.
    async with hub.subscribe([changes], conflate=True, resync=True) as mailbox:
        follower = _Follower(hub, mailbox, timeseries)
        codes = await _read(sessions, user_id, watchlist_id)
        if codes is None:
            raise WatchlistNotFoundError(watchlist_id)
        for quote in await follower.follow(codes, resync=False):
            yield quote
        while True:
            message = await mailbox.get()
            if message.channel == changes:
                codes = await _read(sessions, user_id, watchlist_id)
                if codes is None:
                    return  # the list was deleted
                for quote in await follower.follow(codes, resync=message.message == RESYNC):
                    yield quote
                continue
            if message.message == RESYNC:
                continue  # every channel gets one; the change channel's catches up for all
            live = follower.tick(decode_tick(message.message))
            if live is not None:
                yield live


async def _read(sessions: SessionFactory, user_id: int, watchlist_id: int) -> list[str] | None:
    async with sessions() as session:
        return await watchlist_repo.owned_symbol_codes(session, user_id, watchlist_id)


class _Follower:
    """What the stream has shown: the list's order and each symbol's last tick."""

    def __init__(self, hub: Hub, mailbox: Mailbox, timeseries: TimeSeriesStore) -> None:
        self._hub = hub
        self._mailbox = mailbox
        self._timeseries = timeseries
        self._positions: dict[str, int] = {}
        self._shown: dict[str, Tick] = {}

    async def follow(self, codes: list[str], *, resync: bool) -> list[WatchlistQuote]:
        """Move to the list ``codes``; the quotes that announce the difference."""
        positions = {code: index for index, code in enumerate(codes)}
        added = [code for code in codes if code not in self._positions]
        removed = [code for code in self._positions if code not in positions]
        # Listen before reading the snapshot, so no tick falls between the two.
        await self._hub.listen(self._mailbox, [tick_channel(code) for code in added])
        self._hub.unlisten(self._mailbox, [tick_channel(code) for code in removed])
        snapshot = await self._snapshot(codes if resync else added)
        quotes = [WatchlistQuote(code, None, None) for code in removed]
        for code in removed:
            self._shown.pop(code, None)
        for code in codes:
            fresh = snapshot.get(code)
            if fresh is not None and self._is_new(fresh):
                self._shown[code] = fresh
            elif code not in added and self._positions.get(code) == positions[code]:
                continue  # nothing about it changed
            quotes.append(WatchlistQuote(code, positions[code], self._shown.get(code)))
        self._positions = positions
        return quotes

    def tick(self, tick: Tick) -> WatchlistQuote | None:
        """The quote a live tick makes, or None if it is not news (or no longer wanted)."""
        position = self._positions.get(tick.symbol)
        if position is None or not self._is_new(tick):
            return None
        self._shown[tick.symbol] = tick
        return WatchlistQuote(tick.symbol, position, tick)

    def _is_new(self, tick: Tick) -> bool:
        # A tick that was in the snapshot and then arrives live, or an older one, is not.
        shown = self._shown.get(tick.symbol)
        return shown is None or (tick != shown and tick.time >= shown.time)

    async def _snapshot(self, codes: list[str]) -> dict[str, Tick]:
        if not codes:
            return {}
        try:
            return dict(await self._timeseries.latest_ticks(codes))
        except Exception as error:
            # The store is down: live ticks still flow through the bus, so keep
            # the stream and skip the snapshot rather than end it.
            if as_service_unavailable(error) is None:
                raise
            return {}
