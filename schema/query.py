"""The Query root: declarations plus one-line hand-offs to resolvers."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar

import strawberry

from resolvers import (
    alerts,
    auth,
    instruments,
    market,
    orders,
    strategies,
    watchlists,
    webhooks,
)
from resolvers import backtests as backtest_resolvers
from resolvers.amounts import amounts
from resolvers.context import Info
from resolvers.pagination import (
    Paging,
    check_page_size,
    check_time_range,
    decode_cursor,
    decode_int_cursor,
    parse_id,
)
from schema import compiled, indicators
from schema import strategies as strategy_types
from schema.alerts import Alert, AlertFiring
from schema.auth import User
from schema.backtests import SavedBacktest
from schema.common import Before, Connection, From, Last, To
from schema.enums import (
    AlertStatus,
    KlineInterval,
    OrderSide,
    OrderStatus,
    OrderType,
    StrategyKind,
    WebhookDeliveryStatus,
)
from schema.indicators import KlineSeries, kline_columns
from schema.instruments import SymbolAuditEntry
from schema.market import Kline, Symbol, Tick, kline_rows, symbol_or_none
from schema.orders import Order, order_or_none
from schema.permissions import ADMINISTRATION, MARKET_DATA, SIGNED_IN, TRADING
from schema.strategies import Strategy, StrategyKindInfo, strategy_or_none
from schema.watchlists import Watchlist, watchlist_or_none
from schema.webhooks import Webhook, WebhookDelivery
from storage import timeseries as ts


def _orders_page(arguments: Mapping[str, Any], cap: int) -> compiled.Page:
    return compiled.Page(
        check_page_size(arguments["first"], cap), decode_int_cursor("order", arguments.get("after"))
    )


def _order_conditions(arguments: Mapping[str, Any]) -> list[compiled.Condition]:
    """The ``orders`` filter as ``resolvers.orders.order_filter`` reads it, as conditions."""
    status, side, order_type = arguments.get("status"), arguments.get("side"), arguments.get("type")
    found = orders.order_filter(
        [OrderStatus(value) for value in status] if status else None,
        arguments.get("symbol"),
        OrderSide(side) if side is not None else None,
        OrderType(order_type) if order_type is not None else None,
        arguments.get("strategyId"),
        arguments.get("from"),
        arguments.get("to"),
    )
    check_time_range(found.created_from, found.created_to)
    given: list[tuple[str, str, Any]] = [
        ("status", "in", list(found.statuses) if found.statuses else None),
        ("symbol_code", "=", found.symbol_code),
        ("side", "=", found.side),
        ("type", "=", found.type),
        ("strategy_id", "=", found.strategy_id),
        ("created_at", ">=", found.created_from),
        ("created_at", "<", found.created_to),
    ]
    return [compiled.Condition(c, op, value) for c, op, value in given if value is not None]


def _strategies_page(arguments: Mapping[str, Any], cap: int) -> compiled.Page:
    return compiled.Page(
        check_page_size(arguments["first"], cap),
        decode_int_cursor("strategy", arguments.get("after")),
    )


def _symbols_page(arguments: Mapping[str, Any], cap: int) -> compiled.Page:
    return compiled.Page(
        check_page_size(arguments["first"], cap), decode_cursor("symbol", arguments.get("after"))
    )


def _symbol_conditions(arguments: Mapping[str, Any]) -> list[compiled.Condition]:
    """``exchange`` as ``search_symbols`` reads it. A text ``search`` is not compiled (its
    case folding is the database's own), so it sends the field down the standard path."""
    if arguments.get("search"):
        raise ValueError("search is answered by the standard path")
    exchange = arguments.get("exchange")
    return [compiled.Condition("exchange", "=", exchange.upper())] if exchange else []


def _kline_texts(
    info: Info, arguments: Mapping[str, Any]
) -> tuple[str, ts.KlineInterval, Awaitable[list[ts.BarText]]]:
    """What both kline shapes of the compiled path read: the resolvers' checks now
    (raising as they would), the bars, written as text, when awaited."""
    interval = ts.KlineInterval(KlineInterval(arguments["interval"]).value)
    start, end, limit = arguments.get("from"), arguments.get("to"), arguments["limit"]
    market.check_series_arguments(info, start, end, limit)
    symbol = arguments["symbol"].upper()
    return symbol, interval, market.kline_texts(info, symbol, interval, start, end, limit)


def _kline_rows(info: Info, arguments: Mapping[str, Any]) -> Awaitable[list[dict[str, Any]]]:
    """``klines`` as rows of JSON values."""
    _, interval, bars = _kline_texts(info, arguments)
    return _as_rows(bars, daily=not interval.is_intraday)


async def _as_rows(bars: Awaitable[list[ts.BarText]], *, daily: bool) -> list[dict[str, Any]]:
    return kline_rows(await bars, daily=daily)


def _kline_columns(info: Info, arguments: Mapping[str, Any]) -> Awaitable[dict[str, Any]]:
    """``klineSeries`` as one object of JSON values."""
    symbol, interval, bars = _kline_texts(info, arguments)
    return _as_columns(symbol, interval, bars)


async def _as_columns(
    symbol: str, interval: ts.KlineInterval, bars: Awaitable[list[ts.BarText]]
) -> dict[str, Any]:
    return kline_columns(symbol, interval, await bars)


@strawberry.type(description="Read access to market, strategy and order data.")
class Query:
    # Root fields the compiled read path answers (docs/compiled_reads.md), with the
    # arguments it understands; the rows and their checks are the resolvers' own.
    sql_reads: ClassVar[Mapping[str, compiled.RootRead]] = {
        "orders": compiled.RootConnection(
            table="orders",
            key="id",
            cursor_kind="order",
            descending=True,
            owner="user_id",
            arguments=frozenset(
                {"status", "symbol", "side", "type", "strategyId", "from", "to", "first", "after"}
            ),
            page=_orders_page,
            narrowing=_order_conditions,
        ),
        "order": compiled.RootByKey(
            table="orders",
            column="id",
            owner="user_id",
            arguments=frozenset({"id"}),
            key=lambda arguments: parse_id(arguments["id"]),
        ),
        "strategies": compiled.RootConnection(
            table="strategies",
            key="id",
            cursor_kind="strategy",
            descending=False,
            owner="user_id",
            arguments=frozenset({"first", "after"}),
            page=_strategies_page,
        ),
        "strategy": compiled.RootByKey(
            table="strategies",
            column="id",
            owner="user_id",
            arguments=frozenset({"id"}),
            key=lambda arguments: parse_id(arguments["id"]),
        ),
        "symbols": compiled.RootConnection(
            table="symbols",
            key="code",
            cursor_kind="symbol",
            descending=False,
            owner=None,
            arguments=frozenset({"search", "exchange", "first", "after"}),
            page=_symbols_page,
            narrowing=_symbol_conditions,
        ),
        "symbol": compiled.RootByKey(
            table="symbols",
            column="code",
            owner=None,
            arguments=frozenset({"code"}),
            key=lambda arguments: arguments["code"].upper(),
        ),
        "me": compiled.RootCaller(table="users", column="id"),
        "klines": compiled.RootRows(
            arguments=frozenset({"symbol", "interval", "from", "to", "limit"}),
            fields=Kline.row_fields,
            rows=_kline_rows,
        ),
        "klineSeries": compiled.RootObject(
            arguments=frozenset({"symbol", "interval", "from", "to", "limit"}),
            fields=KlineSeries.column_fields,
            value=_kline_columns,
        ),
    }

    @strawberry.field(permission_classes=SIGNED_IN, description="The signed-in user.")
    async def me(self, info: Info) -> User | None:
        row = await auth.me(info)
        return User.from_row(row) if row is not None else None

    @strawberry.field(
        permission_classes=MARKET_DATA, description="One symbol by code, or null if unknown."
    )
    async def symbol(self, info: Info, code: str) -> Symbol | None:
        return symbol_or_none(await market.symbol(info, code))

    @strawberry.field(
        permission_classes=MARKET_DATA,
        description="Symbols in code order, filtered by text and exchange.",
    )
    async def symbols(
        self,
        info: Info,
        search: str | None = None,
        exchange: str | None = None,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Symbol]:
        paging = Paging.of(info, first, after, last, before)
        page = await market.symbols(info, search, exchange, paging)
        return Connection[Symbol].build(
            page, kind="symbol", key=lambda row: row.code, node=Symbol.from_row
        )

    @strawberry.field(
        permission_classes=ADMINISTRATION,
        description=(
            "Administrative changes to symbols, newest first (ADMIN): of one symbol, or of "
            "all when `symbol` is omitted. A code never changed has none."
        ),
    )
    async def symbol_audit(
        self,
        info: Info,
        symbol: str | None = None,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[SymbolAuditEntry]:
        paging = Paging.of(info, first, after, last, before)
        page = await instruments.symbol_audit(info, symbol, paging)
        return Connection[SymbolAuditEntry].build(
            page,
            kind=instruments.AUDIT_CURSOR,
            key=lambda row: row.id,
            node=SymbolAuditEntry.from_row,
        )

    @strawberry.field(
        permission_classes=MARKET_DATA, description="Exchanges that list at least one symbol."
    )
    async def exchanges(self, info: Info) -> list[str]:
        return await market.exchanges(info)

    @strawberry.field(
        permission_classes=MARKET_DATA,
        description="The latest tick of a symbol, or null before its first tick.",
    )
    async def quote(self, info: Info, symbol: str) -> Tick | None:
        tick = await market.quote(info, symbol)
        return Tick.from_domain(tick, amounts(info)) if tick else None

    @strawberry.field(
        permission_classes=MARKET_DATA,
        description=(
            "Stored ticks in [from, to), ascending. With `from`, the first `limit` from it; "
            "without, the latest `limit` before `to`."
        ),
    )
    async def ticks(
        self,
        info: Info,
        symbol: str,
        from_: From = None,
        to: To = None,
        limit: int = 100,
    ) -> list[Tick]:
        rows = await market.ticks(info, symbol, from_, to, limit)
        scale = amounts(info)
        return [Tick.from_domain(tick, scale) for tick in rows]

    @strawberry.field(
        permission_classes=MARKET_DATA,
        description=(
            "OHLCV bars whose start lies in [from, to), ascending; same `limit` rule as `ticks`."
        ),
    )
    async def klines(
        self,
        info: Info,
        symbol: str,
        interval: KlineInterval,
        from_: From = None,
        to: To = None,
        limit: int = 500,
    ) -> list[Kline]:
        domain_interval = ts.KlineInterval(interval.value)
        bars = await market.klines(info, symbol, domain_interval, from_, to, limit)
        daily = not domain_interval.is_intraday
        scale = amounts(info)
        return [Kline.from_domain(bar, scale, daily=daily) for bar in bars]

    strategy_kinds: list[StrategyKindInfo] = strawberry.field(
        resolver=strategy_types.strategy_kinds,
        description="Every strategy kind with the parameters it takes (names, types, ranges).",
    )
    kline_series: KlineSeries = strawberry.field(
        resolver=indicators.kline_series,
        permission_classes=MARKET_DATA,
        description=(
            "Bars as columns (one array per field), for charting, with technical indicators "
            "computed over them; same range and limit rules as `klines`."
        ),
    )

    @strawberry.field(permission_classes=TRADING, description="Your strategies, oldest first.")
    async def strategies(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Strategy]:
        page = await strategies.strategies(info, Paging.of(info, first, after, last, before))
        return Connection[Strategy].build(
            page, kind="strategy", key=lambda row: row.id, node=Strategy.from_row
        )

    @strawberry.field(
        permission_classes=TRADING,
        description=(
            "Your strategies' signals, newest first; every argument given narrows the list "
            "(`from`/`to` on the start of the bar a signal fired on)."
        ),
    )
    async def signals(
        self,
        info: Info,
        strategy_id: strawberry.ID | None = None,
        symbol: str | None = None,
        side: OrderSide | None = None,
        from_: From = None,
        to: To = None,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[strategy_types.Signal]:
        filters = strategies.signal_filter(strategy_id, symbol, side, from_, to)
        paging = Paging.of(info, first, after, last, before)
        page = await strategies.signal_history(info, filters, paging)
        scale = amounts(info)
        return Connection[strategy_types.Signal].build(
            page,
            kind="signal",
            key=lambda row: row.id,
            node=lambda row: strategy_types.Signal.from_row(row, scale),
        )

    @strawberry.field(
        permission_classes=TRADING,
        description="Your saved backtest runs, newest first, narrowed by symbol and kind.",
    )
    async def backtests(
        self,
        info: Info,
        symbol: str | None = None,
        kind: StrategyKind | None = None,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[SavedBacktest]:
        paging = Paging.of(info, first, after, last, before)
        kind_name = kind.value if kind is not None else None
        page = await backtest_resolvers.saved_backtests(info, symbol, kind_name, paging)
        scale = amounts(info)
        return Connection[SavedBacktest].build(
            page,
            kind="backtest",
            key=lambda run: run.id,
            node=lambda run: SavedBacktest.from_domain(run, scale),
        )

    @strawberry.field(permission_classes=TRADING, description="One of your saved runs, or null.")
    async def backtest(self, info: Info, id: strawberry.ID) -> SavedBacktest | None:
        run = await backtest_resolvers.saved_backtest(info, id)
        return SavedBacktest.from_domain(run, amounts(info)) if run is not None else None

    @strawberry.field(permission_classes=TRADING, description="One of your strategies, or null.")
    async def strategy(self, info: Info, id: strawberry.ID) -> Strategy | None:
        return strategy_or_none(await strategies.strategy(info, id))

    @strawberry.field(
        permission_classes=TRADING,
        description=(
            "Your orders, newest first; every argument given narrows the list "
            "(`from`/`to` on the time the order was placed)."
        ),
    )
    async def orders(
        self,
        info: Info,
        status: list[OrderStatus] | None = None,
        symbol: str | None = None,
        side: OrderSide | None = None,
        type: OrderType | None = None,
        strategy_id: strawberry.ID | None = None,
        from_: From = None,
        to: To = None,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Order]:
        filters = orders.order_filter(status, symbol, side, type, strategy_id, from_, to)
        page = await orders.orders(info, filters, Paging.of(info, first, after, last, before))
        scale = amounts(info)
        return Connection[Order].build(
            page, kind="order", key=lambda row: row.id, node=lambda row: Order.from_row(row, scale)
        )

    @strawberry.field(permission_classes=TRADING, description="One of your orders, or null.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        return order_or_none(await orders.order(info, id), amounts(info))

    @strawberry.field(
        permission_classes=SIGNED_IN,
        description=(
            "Your watchlists, oldest first (their number is capped per user, so not paged)."
        ),
    )
    async def watchlists(self, info: Info) -> list[Watchlist]:
        return [Watchlist.from_domain(found) for found in await watchlists.watchlists(info)]

    @strawberry.field(permission_classes=SIGNED_IN, description="One of your watchlists, or null.")
    async def watchlist(self, info: Info, id: strawberry.ID) -> Watchlist | None:
        return watchlist_or_none(await watchlists.watchlist(info, id))

    @strawberry.field(
        permission_classes=SIGNED_IN,
        description="Your alerts, newest first, optionally only those of some statuses.",
    )
    async def alerts(
        self,
        info: Info,
        status: list[AlertStatus] | None = None,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Alert]:
        paging = Paging.of(info, first, after, last, before)
        page = await alerts.alerts(info, status, paging)
        scale = amounts(info)
        return Connection[Alert].build(
            page,
            kind=alerts.ALERT_CURSOR,
            key=lambda row: row.id,
            node=lambda row: Alert.from_row(row, scale),
        )

    @strawberry.field(permission_classes=SIGNED_IN, description="One of your alerts, or null.")
    async def alert(self, info: Info, id: strawberry.ID) -> Alert | None:
        row = await alerts.alert(info, id)
        return Alert.from_row(row, amounts(info)) if row is not None else None

    @strawberry.field(
        permission_classes=SIGNED_IN,
        description="Your alerts' firings, newest first (of one alert when `alertId` is given).",
    )
    async def alert_firings(
        self,
        info: Info,
        alert_id: strawberry.ID | None = None,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[AlertFiring]:
        paging = Paging.of(info, first, after, last, before)
        page = await alerts.alert_firings(info, alert_id, paging)
        scale = amounts(info)
        return Connection[AlertFiring].build(
            page,
            kind=alerts.FIRING_CURSOR,
            key=lambda row: row.id,
            node=lambda row: AlertFiring.from_row(row, scale),
        )

    @strawberry.field(
        permission_classes=SIGNED_IN,
        description="Your webhooks, oldest first (capped per user, so not paged).",
    )
    async def webhooks(self, info: Info) -> list[Webhook]:
        return [Webhook.from_row(row) for row in await webhooks.webhooks(info)]

    @strawberry.field(
        permission_classes=SIGNED_IN,
        description=(
            "The delivery log of your webhooks, newest first (of one webhook when "
            "`webhookId` is given; only some statuses when `status` is)."
        ),
    )
    async def webhook_deliveries(
        self,
        info: Info,
        webhook_id: strawberry.ID | None = None,
        status: list[WebhookDeliveryStatus] | None = None,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[WebhookDelivery]:
        paging = Paging.of(info, first, after, last, before)
        page = await webhooks.deliveries(info, webhook_id, status, paging)
        return Connection[WebhookDelivery].build(
            page,
            kind=webhooks.DELIVERY_CURSOR,
            key=lambda row: row.id,
            node=WebhookDelivery.from_row,
        )
