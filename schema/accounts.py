"""The caller's paper-trading account: balances, positions and fills."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

import strawberry

from graphql_api.trading.equity import SnapshotKind
from graphql_api.trading.round_trips import RoundTrip
from resolvers import accounts as account_resolvers
from resolvers.amounts import Amounts, amounts
from resolvers.context import Info
from resolvers.pagination import Paging, check_page_size, check_time_range, decode_int_cursor
from schema.backtests import TradeSide
from schema.common import Before, Connection, From, Last, To
from schema.compiled import (
    Amount,
    Cash,
    Column,
    Computed,
    Condition,
    Kind,
    NestedConnection,
    ObjectReads,
    Page,
    RootConnection,
    ToMany,
    ToOne,
)
from schema.enums import OrderSide
from schema.market import Symbol, symbol_of
from schema.scalars import serialize_decimal
from storage import models

AVERAGE_COST_STEP = Decimal("1e-8")


_POSITION_INPUTS = {
    "quantity": "quantity",
    "cost_basis": "cost_basis",
    "realized_pnl": "realized_pnl",
    "symbol_code": "symbol_code",
}


async def _balance_values(
    info: Info, items: Sequence[Mapping[str, Any]], *, reserved: bool
) -> list[str]:
    """``reserved`` or ``buyingPower`` of compiled balances, as the resolver sums them
    (read once per answer: kept in the computations' ``memo``)."""
    memo: dict[str, Any] = getattr(info, "memo", {})
    views = memo.get("balances")
    if views is None:
        views = memo["balances"] = {
            view.currency: view for view in await account_resolvers.balances(info)
        }
    scale = amounts(info)
    values: list[str] = []
    for item in items:
        currency, cash = item["currency"], Decimal(item["amount"])
        view = views.get(currency)
        held = view.reserved if view is not None else Decimal(0)
        value = held if reserved else cash - held
        values.append(serialize_decimal(scale.cash(value, currency)))
    return values


async def _average_cost(position: Position, _info: Info) -> Decimal | None:
    return position.average_cost


async def _position_values(
    info: Info,
    items: Sequence[Mapping[str, Any]],
    read: Callable[[Position, Info], Awaitable[Decimal | None]],
) -> list[str | None]:
    """A computed field of compiled positions, by ``Position``'s own code; the quotes
    they need are loaded together (one DataLoader batch)."""
    scale = amounts(info)
    positions = [
        Position.from_row(
            models.Position(
                quantity=Decimal(item["quantity"]),
                cost_basis=Decimal(item["cost_basis"]),
                realized_pnl=Decimal(item["realized_pnl"]),
                symbol_code=item["symbol_code"],
            ),
            scale,
        )
        for item in items
    ]
    values = await asyncio.gather(*(read(position, info) for position in positions))
    return [serialize_decimal(value) if value is not None else None for value in values]


@strawberry.type(description="Cash in one currency.")
class Balance:
    currency: str = strawberry.field(description="Currency code (CNY, USDT, …).")
    cash: Decimal = strawberry.field(description="Cash held.")
    reserved: Decimal = strawberry.field(
        description="Cash held back by open BUY orders (remaining notional plus commission)."
    )
    buying_power: Decimal = strawberry.field(description="cash - reserved.")

    # The compiled read path (docs/compiled_reads.md). What open orders reserve is
    # summed in Python with the risk policy's commission rate, after the statement.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="cash_balances",
        fields={
            "currency": Column("currency", Kind.TEXT),
            "cash": Cash("amount"),
            "reserved": Computed(
                {"currency": "currency", "amount": "amount"},
                lambda info, items: _balance_values(info, items, reserved=True),
            ),
            "buyingPower": Computed(
                {"currency": "currency", "amount": "amount"},
                lambda info, items: _balance_values(info, items, reserved=False),
            ),
        },
    )


@strawberry.type(description="A holding in one symbol (negative quantity: short).")
class Position:
    quantity: Decimal = strawberry.field(description="Signed quantity held.")
    cost_basis: Decimal = strawberry.field(description="Total cost of the open quantity.")
    average_cost: Decimal | None = strawberry.field(
        description="cost basis / quantity (8 decimals); null when flat."
    )
    realized_pnl: Decimal = strawberry.field(description="Profit realised by reducing trades.")
    symbol_code: strawberry.Private[str]

    # The compiled read path. ``averageCost`` (a division rounded in Python; SQLite
    # keeps decimals as text) and ``lastPrice``, ``marketValue`` and ``unrealizedPnl``
    # (from the live quotes, loaded together) are computed after the statement by
    # these very methods.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="positions",
        fields={
            "quantity": Amount("quantity", step="lot_size", step_via="symbol_code"),
            "costBasis": Cash("cost_basis", currency_via="symbol_code"),
            "realizedPnl": Cash("realized_pnl", currency_via="symbol_code"),
            "symbol": ToOne(local="symbol_code", remote="code"),
            "averageCost": Computed(
                _POSITION_INPUTS,
                lambda info, items: _position_values(info, items, _average_cost),
            ),
            "lastPrice": Computed(
                _POSITION_INPUTS,
                lambda info, items: _position_values(info, items, _last_price),
            ),
            "marketValue": Computed(
                _POSITION_INPUTS,
                lambda info, items: _position_values(info, items, _market_value),
            ),
            "unrealizedPnl": Computed(
                _POSITION_INPUTS,
                lambda info, items: _position_values(info, items, _unrealized_pnl),
            ),
        },
    )

    @classmethod
    def from_row(cls, row: models.Position, scale: Amounts) -> Position:
        code = row.symbol_code
        average = (
            (row.cost_basis / row.quantity).quantize(AVERAGE_COST_STEP, rounding=ROUND_HALF_UP)
            if row.quantity
            else None
        )
        return cls(
            quantity=scale.quantity(row.quantity, code),
            cost_basis=scale.quote_cash(row.cost_basis, code),
            average_cost=scale.price(average, code) if average is not None else None,
            realized_pnl=scale.quote_cash(row.realized_pnl, code),
            symbol_code=code,
        )

    @strawberry.field(description="The instrument held.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)

    @strawberry.field(description="Latest trade price; null before the first tick.")
    async def last_price(self, info: Info) -> Decimal | None:
        tick = await info.context.loaders.quote_by_symbol.load(self.symbol_code)
        return amounts(info).price(tick.last, self.symbol_code) if tick else None

    @strawberry.field(description="quantity × last price.")
    async def market_value(self, info: Info) -> Decimal | None:
        last = await self.last_price(info)
        if last is None:
            return None
        return amounts(info).quote_cash(self.quantity * last, self.symbol_code)

    @strawberry.field(description="market value - cost basis, at the latest quote.")
    async def unrealized_pnl(self, info: Info) -> Decimal | None:
        value = await self.market_value(info)
        if value is None:
            return None
        return amounts(info).quote_cash(value - self.cost_basis, self.symbol_code)


async def _last_price(position: Position, info: Info) -> Decimal | None:
    value: Decimal | None = await position.last_price(info)
    return value


async def _market_value(position: Position, info: Info) -> Decimal | None:
    value: Decimal | None = await position.market_value(info)
    return value


async def _unrealized_pnl(position: Position, info: Info) -> Decimal | None:
    value: Decimal | None = await position.unrealized_pnl(info)
    return value


@strawberry.type(description="One fill of one of your orders.")
class Trade:
    id: strawberry.ID = strawberry.field(description="Trade id.")
    order_id: strawberry.ID = strawberry.field(description="The order it filled.")
    side: OrderSide = strawberry.field(description="BUY or SELL.")
    quantity: Decimal = strawberry.field(description="Quantity filled.")
    price: Decimal = strawberry.field(description="Fill price.")
    commission: Decimal = strawberry.field(description="Commission charged.")
    realized_pnl: Decimal = strawberry.field(description="P&L realised by this fill.")
    time: datetime = strawberry.field(description="Time of the tick it filled on.")
    symbol_code: strawberry.Private[str]

    # The compiled read path (docs/compiled_reads.md), for ``Order.fills`` and
    # ``Account.trades``. Commission and realized P&L are shown at the quote currency's
    # minor unit, which the statement reads from the Python table.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="trades",
        fields={
            "id": Column("id", Kind.ID),
            "orderId": Column("order_id", Kind.ID),
            "side": Column("side", Kind.ENUM),
            "quantity": Amount("quantity", step="lot_size", step_via="symbol_code"),
            "price": Amount("price", step="tick_size", step_via="symbol_code"),
            "commission": Cash("commission", currency_via="symbol_code"),
            "realizedPnl": Cash("realized_pnl", currency_via="symbol_code"),
            "time": Column("tick_time", Kind.TIME),
            "symbol": ToOne(local="symbol_code", remote="code"),
        },
    )

    @classmethod
    def from_row(cls, row: models.Trade, scale: Amounts) -> Trade:
        code = row.symbol_code
        return cls(
            id=strawberry.ID(str(row.id)),
            order_id=strawberry.ID(str(row.order_id)),
            side=OrderSide(row.side),
            quantity=scale.quantity(row.quantity, code),
            price=scale.price(row.price, code),
            commission=scale.quote_cash(row.commission, code),
            realized_pnl=scale.quote_cash(row.realized_pnl, code),
            time=row.tick_time,
            symbol_code=row.symbol_code,
        )

    @strawberry.field(description="The instrument.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)


strawberry.enum(
    SnapshotKind,
    name="EquitySnapshotKind",
    description="END_OF_DAY (every account, at each UTC midnight) or INTRADAY (on request).",
)


@strawberry.type(description="The account's worth in one currency at one moment.")
class EquitySnapshot:
    time: datetime = strawberry.field(description="When it was valued (UTC).")
    kind: SnapshotKind = strawberry.field(description="END_OF_DAY or INTRADAY.")
    currency: str = strawberry.field(description="The currency of these amounts.")
    cash: Decimal = strawberry.field(description="Cash held.")
    positions_value: Decimal = strawberry.field(
        description="Positions quoted in this currency at their last price (cost if none)."
    )
    equity: Decimal = strawberry.field(description="cash + positionsValue.")

    @classmethod
    def of(
        cls,
        scale: Amounts,
        currency: str,
        moment: datetime,
        kind: SnapshotKind,
        amounts_: tuple[Decimal, Decimal, Decimal],
    ) -> EquitySnapshot:
        cash, positions_value, equity = amounts_
        return cls(
            time=moment,
            kind=kind,
            currency=currency,
            cash=scale.cash(cash, currency),
            positions_value=scale.cash(positions_value, currency),
            equity=scale.cash(equity, currency),
        )


@strawberry.type(
    description=(
        "Your account's results over a period, with a backtest's metrics computed the "
        "same way (docs/trading.md, 'Account performance')."
    )
)
class AccountPerformance:
    currency: str = strawberry.field(description="The currency of the curve and P&L.")
    equity_curve: list[EquitySnapshot] = strawberry.field(
        description="Snapshots in the period, oldest first."
    )
    total_return_pct: float | None = strawberry.field(
        description="(last - first) / first equity of the curve, in %; null under two points."
    )
    max_drawdown_pct: float = strawberry.field(
        description="Largest fall from a peak of the end-of-day equity, in %."
    )
    sharpe: float = strawberry.field(
        description="Annualised Sharpe ratio of daily returns (365 a year), 0 if undefined."
    )
    win_rate_pct: float | None = strawberry.field(
        description="Round trips closed in the period with a positive net P&L, in %."
    )
    round_trip_count: int = strawberry.field(description="Round trips closed in the period.")
    realized_pnl: Decimal = strawberry.field(
        description="Net P&L (after commission) of the round trips closed in the period."
    )


@strawberry.type(description="A position from flat back to flat (or through it): a round trip.")
class ClosedPosition:
    side: TradeSide = strawberry.field(description="LONG or SHORT.")
    quantity: Decimal = strawberry.field(description="The largest position held.")
    opened_at: datetime = strawberry.field(description="Tick time of the opening fill.")
    closed_at: datetime = strawberry.field(description="Tick time of the closing fill.")
    realized_pnl: Decimal = strawberry.field(description="Price P&L of the reducing fills.")
    commission: Decimal = strawberry.field(description="Commission of its fills.")
    net_pnl: Decimal = strawberry.field(description="realizedPnl - commission.")
    symbol_code: strawberry.Private[str]

    @classmethod
    def from_domain(cls, trip: RoundTrip, scale: Amounts) -> ClosedPosition:
        code = trip.symbol_code
        return cls(
            side=TradeSide(trip.side),
            quantity=scale.quantity(trip.quantity, code),
            opened_at=trip.opened_at,
            closed_at=trip.closed_at,
            realized_pnl=scale.quote_cash(trip.realized_pnl, code),
            commission=scale.quote_cash(trip.commission, code),
            net_pnl=scale.quote_cash(trip.net_pnl, code),
            symbol_code=code,
        )

    @strawberry.field(description="The instrument.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)


def _trades_page(arguments: Mapping[str, Any], cap: int) -> Page:
    return Page(
        check_page_size(arguments["first"], cap), decode_int_cursor("trade", arguments.get("after"))
    )


def _trade_conditions(arguments: Mapping[str, Any]) -> list[Condition]:
    """``Account.trades``' filter as ``resolvers.accounts.trade_filter`` reads it."""
    side = arguments.get("side")
    found = account_resolvers.trade_filter(
        arguments.get("symbol"),
        OrderSide(side) if side is not None else None,
        arguments.get("from"),
        arguments.get("to"),
    )
    check_time_range(found.time_from, found.time_to)
    given: list[tuple[str, str, Any]] = [
        ("symbol_code", "=", found.symbol_code),
        ("side", "=", found.side),
        ("tick_time", ">=", found.time_from),
        ("tick_time", "<", found.time_to),
    ]
    return [Condition(c, op, value) for c, op, value in given if value is not None]


@strawberry.type(description="Your paper-trading account.")
class Account:
    # The compiled read path: an account is read from its user's row (``User.account``);
    # balances in currency order, open positions in symbol order, fills newest first,
    # as the resolvers list them. ``performance`` and ``closedPositions`` are computed
    # in Python from the fills: they take the standard path.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="users",
        fields={
            "balances": ToMany(local="id", remote="user_id", key="currency", descending=False),
            "positions": ToMany(
                local="id",
                remote="user_id",
                key="symbol_code",
                descending=False,
                nonzero="quantity",
            ),
            "trades": NestedConnection(
                RootConnection(
                    table="trades",
                    key="id",
                    cursor_kind="trade",
                    descending=True,
                    owner="user_id",
                    arguments=frozenset({"symbol", "side", "from", "to", "first", "after"}),
                    page=_trades_page,
                    narrowing=_trade_conditions,
                )
            ),
        },
    )

    @strawberry.field(description="Cash per currency, with what open orders reserve.")
    async def balances(self, info: Info) -> list[Balance]:
        rows = await account_resolvers.balances(info)
        scale = amounts(info)
        return [
            Balance(
                currency=row.currency,
                cash=scale.cash(row.cash, row.currency),
                reserved=scale.cash(row.reserved, row.currency),
                buying_power=scale.cash(row.buying_power, row.currency),
            )
            for row in rows
        ]

    @strawberry.field(
        description=(
            "Equity curve and metrics in one currency over `[from, to)` (all time if "
            "omitted): end-of-day snapshots plus those you recorded."
        )
    )
    async def performance(
        self, info: Info, currency: str, from_: From = None, to: To = None
    ) -> AccountPerformance:
        found = await account_resolvers.performance(info, currency, from_, to)
        scale = amounts(info)
        return AccountPerformance(
            currency=found.currency,
            equity_curve=[
                EquitySnapshot.of(
                    scale,
                    found.currency,
                    point.time,
                    point.kind,
                    (point.cash, point.positions_value, point.equity),
                )
                for point in found.curve
            ],
            total_return_pct=found.total_return_pct,
            max_drawdown_pct=found.max_drawdown_pct,
            sharpe=found.sharpe,
            win_rate_pct=found.win_rate_pct,
            round_trip_count=found.round_trip_count,
            realized_pnl=scale.cash(found.realized_pnl, found.currency),
        )

    @strawberry.field(
        description=(
            "Round trips closed in `[from, to)` (tick time of the closing fill), newest "
            "first, with their realised P&L; rebuilt from your fills."
        )
    )
    async def closed_positions(
        self, info: Info, symbol: str | None = None, from_: From = None, to: To = None
    ) -> list[ClosedPosition]:
        trips = await account_resolvers.closed_positions(info, symbol, from_, to)
        scale = amounts(info)
        return [ClosedPosition.from_domain(trip, scale) for trip in trips]

    @strawberry.field(description="Open positions.")
    async def positions(self, info: Info) -> list[Position]:
        scale = amounts(info)
        return [Position.from_row(row, scale) for row in await account_resolvers.positions(info)]

    @strawberry.field(
        description=(
            "Your fills, newest first; every argument given narrows the list "
            "(`from`/`to` on the time of the tick a fill was made on)."
        )
    )
    async def trades(
        self,
        info: Info,
        symbol: str | None = None,
        side: OrderSide | None = None,
        from_: From = None,
        to: To = None,
        first: int = 20,
        after: str | None = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Trade]:
        filters = account_resolvers.trade_filter(symbol, side, from_, to)
        paging = Paging.of(info, first, after, last, before)
        page = await account_resolvers.trades(info, filters, paging)
        scale = amounts(info)
        return Connection[Trade].build(
            page, kind="trade", key=lambda r: r.id, node=lambda r: Trade.from_row(r, scale)
        )


@strawberry.type(description="Result of recordEquitySnapshot.")
class RecordEquitySnapshotPayload:
    snapshots: list[EquitySnapshot] = strawberry.field(
        description="One INTRADAY snapshot per currency you hold cash or positions in."
    )


async def record_equity_snapshot(info: Info) -> RecordEquitySnapshotPayload:
    rows = await account_resolvers.record_equity_snapshot(info)
    scale = amounts(info)
    return RecordEquitySnapshotPayload(
        snapshots=[
            EquitySnapshot.of(
                scale,
                row.currency,
                row.taken_at,
                SnapshotKind(row.kind),
                (row.cash, row.positions_value, row.equity),
            )
            for row in rows
        ]
    )
