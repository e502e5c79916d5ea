"""Market data types: symbols, ticks and klines."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import strawberry

from graphql_api.market import sessions
from resolvers import market as market_resolvers
from resolvers.amounts import Amounts, amounts, at_scale
from resolvers.context import Info
from schema.compiled import Amount, Column, Kind, ObjectReads
from schema.enums import OffSessionOrders, Weekday
from storage import models
from storage import timeseries as ts


@strawberry.type(description="A tick: last trade and top of book at one moment.")
class Tick:
    symbol: str = strawberry.field(description="Symbol code, e.g. `600519.SH`.")
    time: datetime = strawberry.field(description="When the tick happened (UTC).")
    last: Decimal = strawberry.field(description="Last traded price.")
    bid: Decimal = strawberry.field(description="Best bid price.")
    ask: Decimal = strawberry.field(description="Best ask price.")
    volume: Decimal = strawberry.field(description="Quantity traded in this tick.")

    @classmethod
    def from_domain(cls, tick: ts.Tick, scale: Amounts) -> Tick:
        code = tick.symbol
        return cls(
            symbol=code,
            time=tick.time,
            last=scale.price(tick.last, code),
            bid=scale.price(tick.bid, code),
            ask=scale.price(tick.ask, code),
            volume=scale.quantity(tick.volume, code),
        )


@strawberry.type(description="An OHLCV bar, labelled by its start time.")
class Kline:
    time: datetime = strawberry.field(description="Bar start (UTC, aligned to the interval).")
    open: Decimal = strawberry.field(description="First price in the bar.")
    high: Decimal = strawberry.field(description="Highest price in the bar.")
    low: Decimal = strawberry.field(description="Lowest price in the bar.")
    close: Decimal = strawberry.field(description="Last price in the bar.")
    volume: Decimal = strawberry.field(description="Total quantity traded in the bar.")
    trade_count: int | None = strawberry.field(
        description="Number of ticks aggregated; null for stored daily bars."
    )

    # What the compiled read path writes for ``klines`` (``kline_rows``).
    row_fields: ClassVar[frozenset[str]] = frozenset(
        {"time", "open", "high", "low", "close", "volume", "tradeCount"}
    )

    @classmethod
    def from_domain(cls, bar: ts.Bar, scale: Amounts, *, daily: bool = False) -> Kline:
        code = bar.symbol
        return cls(
            time=bar.time,
            open=scale.price(bar.open, code),
            high=scale.price(bar.high, code),
            low=scale.price(bar.low, code),
            close=scale.price(bar.close, code),
            volume=scale.quantity(bar.volume, code),
            trade_count=None if daily else bar.trade_count,
        )


def kline_rows(bars: Sequence[ts.BarText], *, daily: bool) -> list[dict[str, Any]]:
    """Bars as :meth:`Kline.from_domain` then the scalars would write them, as JSON
    values by field name (``Kline.row_fields``): the store wrote them already, the
    amounts at their scales (:class:`storage.timeseries.BarText`)."""
    return [
        {
            "time": bar.time,
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "tradeCount": None if daily else bar.trade_count,
        }
        for bar in bars
    ]


@strawberry.type(description="One weekly trading window, in the session's time zone.")
class TradingWindow:
    days: list[Weekday] = strawberry.field(description="The days it opens on.")
    open: str = strawberry.field(description="Opening wall-clock time, `HH:MM`.")
    close: str = strawberry.field(
        description=(
            "Closing wall-clock time, `HH:MM`; `24:00` is midnight, and a close at or "
            "before the open is on the next day."
        )
    )


@strawberry.type(
    description=(
        "When a symbol trades: an IANA time zone and weekly windows of wall-clock hours "
        "(daylight saving time included; holidays are not modelled)."
    )
)
class TradingSession:
    timezone: str = strawberry.field(description="IANA time zone, e.g. `Asia/Shanghai`.")
    windows: list[TradingWindow] = strawberry.field(description="The weekly windows.")
    off_session_orders: OffSessionOrders = strawberry.field(
        description="What an order placed while the session is closed gets."
    )
    domain: strawberry.Private[sessions.TradingSession]

    @classmethod
    def from_row(cls, row: models.Symbol) -> TradingSession:
        session = sessions.session_from_json(row.trading_session)
        return cls(
            timezone=session.timezone,
            windows=[
                TradingWindow(
                    days=sorted(window.days),
                    open=sessions.format_minute(window.open),
                    close=sessions.format_minute(window.close),
                )
                for window in session.windows
            ],
            off_session_orders=OffSessionOrders(row.off_session_orders),
            domain=session,
        )

    @strawberry.field(description="Whether it trades at `at` (default: now).")
    def is_open(self, at: datetime | None = None) -> bool:
        return self.domain.is_open(market_resolvers.session_moment(at, "at"))

    @strawberry.field(
        description=(
            "When trading next starts after a closed spell, after `after` (default: now); "
            "null for a session that never closes."
        )
    )
    def next_open(self, after: datetime | None = None) -> datetime | None:
        return self.domain.next_open(market_resolvers.session_moment(after, "after"))

    @strawberry.field(
        description=(
            "When trading next stops (a lunch break, the day's end), after `after` "
            "(default: now); null for a session that never closes."
        )
    )
    def next_close(self, after: datetime | None = None) -> datetime | None:
        return self.domain.next_close(market_resolvers.session_moment(after, "after"))

    @strawberry.field(
        description=(
            "When the trading day in progress at `after` (default: now), or the next one, "
            "ends: a DAY order placed then expires at this time."
        )
    )
    def day_close(self, after: datetime | None = None) -> datetime:
        return self.domain.day_close(market_resolvers.session_moment(after, "after"))


@strawberry.type(description="A tradable instrument.")
class Symbol:
    code: str = strawberry.field(description="Canonical code: `600519.SH`, `000001.SZ`, `BTCUSDT`.")
    name: str = strawberry.field(description="Instrument name.")
    exchange: str = strawberry.field(description="Listing venue: SSE, SZSE, BINANCE, …")
    currency: str = strawberry.field(description="Quote currency.")
    tick_size: Decimal = strawberry.field(description="Prices must be multiples of this.")
    lot_size: Decimal = strawberry.field(description="Quantities must be multiples of this.")
    tradable: bool = strawberry.field(
        description="Whether orders are accepted; false while trading is halted."
    )
    session: TradingSession = strawberry.field(description="Its trading session.")

    # The compiled read path (docs/compiled_reads.md); quote and dailyBars are not SQL
    # reads of this row and take the standard path.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="symbols",
        fields={
            "code": Column("code", Kind.TEXT),
            "name": Column("name", Kind.TEXT),
            "exchange": Column("exchange", Kind.TEXT),
            "currency": Column("currency", Kind.TEXT),
            "tickSize": Amount("tick_size", step="tick_size"),
            "lotSize": Amount("lot_size", step="lot_size"),
            "tradable": Column("tradable", Kind.BOOL),
            # not "session": its windows are stored as JSON and isOpen/nextOpen/nextClose
            # are computed in Python from the clock (a symbol selecting it runs standard)
        },
    )

    @classmethod
    def from_row(cls, row: models.Symbol) -> Symbol:
        return cls(
            code=row.code,
            name=row.name,
            exchange=row.exchange,
            currency=row.currency,
            tick_size=at_scale(row.tick_size, row.tick_size),
            lot_size=at_scale(row.lot_size, row.lot_size),
            tradable=row.tradable,
            session=TradingSession.from_row(row),
        )

    @strawberry.field(description="The latest tick, or null before the first one.")
    async def quote(self, info: Info) -> Tick | None:
        tick = await market_resolvers.quote(info, self.code)
        return Tick.from_domain(tick, amounts(info)) if tick else None

    @strawberry.field(description="The latest daily bars, oldest first.")
    async def daily_bars(self, info: Info, limit: int = 30) -> list[Kline]:
        bars = await market_resolvers.daily_bars(info, self.code, limit)
        scale = amounts(info)
        return [Kline.from_domain(bar, scale, daily=True) for bar in bars]


def symbol_of(info: Info, code: str) -> Symbol | Awaitable[Symbol]:
    """The ``Symbol`` of a row's symbol code, synchronously when its list resolver
    prefetched it (no awaitable per row), else through the loader."""
    row = market_resolvers.known_symbol(info, code)
    return Symbol.from_row(row) if row is not None else _load_symbol(info, code)


async def _load_symbol(info: Info, code: str) -> Symbol:
    row = await info.context.loaders.symbol_by_code.load(code)
    assert row is not None, "rows reference existing symbols"
    return Symbol.from_row(row)


def symbol_or_none(row: models.Symbol | None) -> Symbol | None:
    return Symbol.from_row(row) if row is not None else None
