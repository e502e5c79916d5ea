"""An in-process catalogue of tradable instruments.

Tick validation runs on every tick, so symbol metadata (tick and lot size) is
kept in memory and reloaded from the database on a miss, instead of one query
per tick. A symbol an administrator creates or changes (:mod:`graphql_api.instruments`)
is announced on :data:`~graphql_api.realtime.channels.SYMBOL_CHANGES_CHANNEL`;
every process's catalogue follows that channel (:meth:`SymbolCatalog.follow`) and
reloads the symbol, so a halt or a new tick size applies everywhere at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import structlog

from graphql_api.market.sessions import (
    ALWAYS_OPEN_UTC,
    OffSessionOrders,
    TradingSession,
    session_from_json,
)
from graphql_api.realtime.channels import SYMBOL_CHANGES_CHANNEL
from graphql_api.realtime.hub import RESYNC, Hub, SlowConsumerError
from storage import models
from storage.engine import SessionFactory
from storage.repositories import symbols as symbol_repo

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    code: str
    exchange: str
    currency: str
    tick_size: Decimal
    lot_size: Decimal
    tradable: bool
    session: TradingSession
    off_session_orders: OffSessionOrders

    @classmethod
    def from_row(cls, row: models.Symbol) -> SymbolSpec:
        return cls(
            code=row.code,
            exchange=row.exchange,
            currency=row.currency,
            tick_size=row.tick_size,
            lot_size=row.lot_size,
            tradable=row.tradable,
            session=session_from_json(row.trading_session),
            off_session_orders=OffSessionOrders(row.off_session_orders),
        )


class SymbolCatalog:
    """Parameters:
    sessions: where symbols are read from (all at :meth:`load`, one by one on a miss).
    """

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._specs: dict[str, SymbolSpec] = {}
        self._always_open: frozenset[str] = frozenset()
        self._on_change: list[Callable[[SymbolSpec], None]] = []

    async def load(self) -> None:
        async with self._sessions() as session:
            rows = await symbol_repo.search_symbols(
                session, search=None, exchange=None, after_code=None, limit=1_000_000
            )
        self._specs = {row.code: self._spec(row) for row in rows}

    def trade_around_the_clock(self, codes: Iterable[str]) -> None:
        """On this process, treat ``codes`` as open at every hour, whatever their stored
        session says: the replay source's symbols (``REPLAY_IGNORE_SESSIONS``), whose
        market is the recording being played, not today's exchange hours. Orders,
        the matcher and the strategy engine read sessions from here, so all follow."""
        self._always_open = frozenset(codes)
        self._specs = {
            code: replace(spec, session=ALWAYS_OPEN_UTC) if code in self._always_open else spec
            for code, spec in self._specs.items()
        }

    def _spec(self, row: models.Symbol) -> SymbolSpec:
        spec = SymbolSpec.from_row(row)
        if spec.code in self._always_open:
            return replace(spec, session=ALWAYS_OPEN_UTC)
        return spec

    async def get_many(self, codes: list[str]) -> dict[str, SymbolSpec]:
        missing = [code for code in codes if code not in self._specs]
        if missing:
            async with self._sessions() as session:
                for row in await symbol_repo.symbols_by_codes(session, missing):
                    self._specs[row.code] = self._spec(row)
        return {code: self._specs[code] for code in codes if code in self._specs}

    async def currency_of(self, code: str) -> str:
        spec = (await self.get_many([code])).get(code)
        if spec is None:
            raise KeyError(code)
        return spec.currency

    def cached(self, code: str) -> SymbolSpec | None:
        """The spec if already loaded (every symbol is, from start-up on), without a query."""
        return self._specs.get(code)

    def all(self) -> list[SymbolSpec]:
        return list(self._specs.values())

    async def refresh(self, codes: Sequence[str]) -> list[SymbolSpec]:
        """Reload ``codes`` from the database (after a change); their specs as now stored."""
        async with self._sessions() as session:
            rows = await symbol_repo.symbols_by_codes(session, list(codes))
        specs = [self._spec(row) for row in rows]
        for spec in specs:
            changed = self._specs.get(spec.code) != spec
            self._specs[spec.code] = spec
            if changed:
                for callback in list(self._on_change):
                    callback(spec)
        return specs

    def on_change(self, callback: Callable[[SymbolSpec], None]) -> Callable[[], None]:
        """Call ``callback(spec)`` whenever a symbol is added or changed in this catalogue
        (by this process or, through :meth:`follow`, another); returns an unsubscribe."""
        self._on_change.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._on_change.remove(callback)

        return remove

    async def follow(self, hub: Hub, *, resync_every: float = 60.0, capacity: int = 10_000) -> None:
        """Reload each symbol announced on the bus, until cancelled.

        After the bus reconnected (events may be lost), every ``resync_every``
        seconds without news, and when more than ``capacity`` announcements were
        waiting (this process fell behind), everything is reloaded: a backstop, as
        for revocations. Announcements that arrive together (an import of many
        symbols) are reloaded in one query.
        """
        behind = False
        while True:
            try:
                await self._follow(hub, resync_every, capacity, reload_first=behind)
            except SlowConsumerError:
                log.warning("symbol catalogue fell behind the bus; reloading everything")
                behind = True

    async def _follow(
        self, hub: Hub, resync_every: float, capacity: int, *, reload_first: bool
    ) -> None:
        channels = [SYMBOL_CHANGES_CHANNEL]
        async with hub.subscribe(channels, conflate=False, capacity=capacity, resync=True) as box:
            if reload_first:  # listening again: nothing announced from now on is missed
                with contextlib.suppress(Exception):
                    await self._reload_all()
            while True:
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can
                    # swallow the cancel that ends this loop at shutdown.
                    async with asyncio.timeout(resync_every):
                        first = await box.get()
                except TimeoutError:
                    codes = {RESYNC}
                else:
                    codes = {first.message}
                    while (more := box.get_nowait()) is not None:
                        codes.add(more.message)
                try:
                    if RESYNC in codes:
                        await self._reload_all()
                    else:
                        await self.refresh(sorted(codes))
                except Exception as error:  # the next event or resync retries
                    log.warning("symbol catalogue reload failed", error=repr(error))

    async def _reload_all(self) -> None:
        async with self._sessions() as session:
            rows = await symbol_repo.search_symbols(
                session, search=None, exchange=None, after_code=None, limit=1_000_000
            )
        for row in rows:
            spec = self._spec(row)
            if self._specs.get(spec.code) != spec:
                self._specs[spec.code] = spec
                for callback in list(self._on_change):
                    callback(spec)


def is_multiple_of(value: Decimal, step: Decimal) -> bool:
    """Exact check that ``value`` sits on the ``step`` grid (tick or lot size).

    Absurd magnitudes (``1e999999``) cannot be divided exactly in the decimal
    context and count as off-grid rather than crashing the request.
    """
    if step <= 0 or not value.is_finite():
        return False
    try:
        return (value % step) == 0
    except InvalidOperation:
        return False


def quantize(value: Decimal, step: Decimal) -> Decimal:
    """Round to the nearest multiple of ``step`` (never below one step)."""
    steps = (value / step).to_integral_value(rounding=ROUND_HALF_UP)
    return max(steps, Decimal(1)) * step
