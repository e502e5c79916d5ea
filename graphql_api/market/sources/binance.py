"""The Binance source: public spot market streams (``bookTicker`` + ``trade``, combined).

A tick is a trade's price and quantity with the best bid and ask of the symbol's
latest ``bookTicker`` (bid and ask default to the trade price until the first
book ticker arrives), stamped with the trade time. Prices and quantities are
quantized to the exchange's grid (``exchangeInfo``: ``PRICE_FILTER.tickSize``,
``LOT_SIZE.stepSize``, read once per connection) and then checked like
``ingestTicks`` against our catalogue; a tick that fails (not on our tick grid,
bid above ask) is skipped and counted, as is a malformed message.

Faults and what happens (each ends the run; the supervisor reconnects with backoff):
- connection refused or dropped, HTTP error from ``exchangeInfo``: reconnect;
- no message for ``stall_seconds``: the stream is stalled, reconnect;
- a ``serverShutdown`` event: reconnect at once;
- a configured symbol that ``exchangeInfo`` does not list, or that our catalogue
  does not know: the source cannot run (:class:`SourceConfigError`), not retried.

Binance closes a connection at 24 hours; the source reconnects on its own before
that (``max_connection_seconds``) without leaving the run, so no tick is dropped
to a supervisor backoff. Binance pings every 20 seconds (3 minutes in older
documentation) and wants a pong with the ping's payload; the ``websockets``
client answers pings by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import structlog
from websockets.asyncio.client import ClientConnection, connect

from graphql_api.market.ingest import TickIngestor
from graphql_api.market.source_health import TickSource
from graphql_api.market.sources.base import SourceConfigError
from graphql_api.market.sources.binance_klines import daily_bar_pages
from graphql_api.market.sources.binance_messages import (
    BookTicker,
    MalformedMessageError,
    Scale,
    ServerShutdown,
    Trade,
    parse_message,
    stream_names,
)
from graphql_api.market.sources.binance_scales import fetch_scales, on_grid
from graphql_api.market.sources.handover import TickHandover
from graphql_api.market.symbols import SymbolSpec
from graphql_api.market.tick_validation import TickDraft, check_tick
from graphql_api.market.value_ranges import TimeWindow
from storage.timeseries import Tick

log = structlog.get_logger(__name__)


class StalledStreamError(Exception):
    """No message within the stall timeout: the connection is presumed dead."""


class ServerClosingError(Exception):
    """Binance announced it is shutting the connection down."""


@dataclass(frozen=True, slots=True)
class BinanceEndpoints:
    """``ws_url``: e.g. ``wss://stream.binance.com:9443``; ``rest_url``: ``https://api.binance.com``."""

    ws_url: str
    rest_url: str

    def stream_url(self, symbols: Sequence[str]) -> str:
        return f"{self.ws_url.rstrip('/')}/stream?streams={'/'.join(stream_names(list(symbols)))}"


class BinanceSource:
    """Parameters:
    symbols: our symbol codes (``BTCUSDT``), each known to the catalogue.
    endpoints: where the streams and the REST API are.
    spec_of: a symbol's spec as the catalogue has it now (None: unknown).
    stall_seconds: reconnect when no message arrives for this long.
    max_connection_seconds: reconnect before Binance's 24-hour cut.
    max_tick_age_years: the ingest window's lower bound (MAX_TICK_AGE_YEARS).
    max_future: how far ahead of our clock a trade time may be.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        endpoints: BinanceEndpoints,
        spec_of: Callable[[str], SymbolSpec | None],
        *,
        stall_seconds: float = 30.0,
        max_connection_seconds: float = 23.5 * 3600,
        max_tick_age_years: int = 30,
        max_future: timedelta = timedelta(seconds=5),
        http_timeout: float = 10.0,
    ) -> None:
        self._symbols = [symbol.upper() for symbol in symbols]
        self._endpoints = endpoints
        self._spec_of = spec_of
        self._stall_seconds = stall_seconds
        self._max_connection_seconds = max_connection_seconds
        self._max_tick_age_years = max_tick_age_years
        self._max_future = max_future
        self._http_timeout = http_timeout
        self._books: dict[str, BookTicker] = {}
        self.skipped = 0  # malformed messages and ticks our checks refuse
        self.connections = 0  # opened (for tests and logs)

    @property
    def name(self) -> TickSource:
        return TickSource.BINANCE

    def symbols(self) -> frozenset[str]:
        return frozenset(self._symbols)

    def daily_bars(self, symbol: str, start: date, end: date) -> AsyncIterator[list[str]]:
        """Daily history from the klines endpoint (:mod:`.binance_klines`), a chunk per page."""
        return daily_bar_pages(
            self._endpoints.rest_url, symbol, start, end, timeout=self._http_timeout
        )

    async def run(self, ingestor: TickIngestor) -> None:
        specs = self._specs()
        scales = await self._exchange_info()
        while True:  # one connection per turn; ends only by an exception
            await self._connection(ingestor, specs, scales)

    def _specs(self) -> dict[str, SymbolSpec]:
        specs = {symbol: self._spec_of(symbol) for symbol in self._symbols}
        unknown = [symbol for symbol, spec in specs.items() if spec is None]
        if unknown:
            raise SourceConfigError(
                f"BINANCE_SYMBOLS: {', '.join(unknown)} not in the symbol catalogue "
                "(add them with createSymbol or import-symbols)"
            )
        return {symbol: spec for symbol, spec in specs.items() if spec is not None}

    async def _exchange_info(self) -> dict[str, Scale]:
        return await fetch_scales(self._endpoints.rest_url, self._symbols, self._http_timeout)

    async def _connection(
        self, ingestor: TickIngestor, specs: dict[str, SymbolSpec], scales: dict[str, Scale]
    ) -> None:
        """One connection until its age limit (returns) or a fault (raises)."""
        url = self._endpoints.stream_url(self._symbols)
        # Binance pings us; we need no pings of our own (stalls are caught by the timeout).
        handover = TickHandover(ingestor, TickSource.BINANCE)
        try:
            async with connect(url, ping_interval=None, open_timeout=self._http_timeout) as socket:
                self.connections += 1
                log.info("binance stream connected", symbols=self._symbols)
                deadline = time.monotonic() + self._max_connection_seconds
                while time.monotonic() < deadline:
                    text = await self._receive(
                        socket, min(self._stall_seconds, deadline - time.monotonic()), deadline
                    )
                    if text is None:
                        break
                    tick = self._handle(text, specs, scales)
                    if tick is not None:
                        await handover.put(tick)
                log.info("binance stream renewed before the 24-hour cut")
        except asyncio.CancelledError:
            handover.abandon()
            raise
        except Exception:
            # Ticks received before a drop or a stall are good ticks: store them.
            await handover.flush()
            raise
        await handover.flush()

    async def _receive(
        self, socket: ClientConnection, wait: float, deadline: float
    ) -> str | bytes | None:
        try:
            async with asyncio.timeout(max(wait, 0)):
                return await socket.recv()
        except TimeoutError:
            if time.monotonic() >= deadline:
                return None
            raise StalledStreamError(f"no message for {self._stall_seconds:g}s") from None

    def _handle(
        self, text: str | bytes, specs: dict[str, SymbolSpec], scales: dict[str, Scale]
    ) -> Tick | None:
        try:
            message = parse_message(text)
        except MalformedMessageError as error:
            self._skip("malformed message", error=str(error))
            return None
        if isinstance(message, ServerShutdown):
            raise ServerClosingError("serverShutdown event")
        scale = scales.get(message.symbol)
        spec = specs.get(message.symbol)
        if scale is None or spec is None:
            self._skip("message for a symbol not subscribed", symbol=message.symbol)
            return None
        if isinstance(message, BookTicker):
            current = self._books.get(message.symbol)
            if current is None or message.update_id > current.update_id:
                self._books[message.symbol] = BookTicker(
                    message.symbol,
                    message.update_id,
                    on_grid(message.bid, scale.tick_size),
                    on_grid(message.ask, scale.tick_size),
                )
            return None
        return self._tick(message, spec, scale)

    def _tick(self, trade: Trade, spec: SymbolSpec, scale: Scale) -> Tick | None:
        price = on_grid(trade.price, scale.tick_size)
        book = self._books.get(trade.symbol)
        draft = TickDraft(
            trade.symbol,
            trade.time,
            price,
            book.bid if book else None,
            book.ask if book else None,
            on_grid(trade.quantity, scale.step_size),
        )
        window = TimeWindow.around(datetime.now(UTC), self._max_tick_age_years, self._max_future)
        tick, errors = check_tick(draft, spec, window, "trade")
        if tick is None:
            self._skip("trade refused", reasons="; ".join(e.message for e in errors))
        return tick

    def _skip(self, what: str, **detail: str) -> None:
        self.skipped += 1
        log.warning(f"binance {what}; skipped", skipped=self.skipped, **detail)
