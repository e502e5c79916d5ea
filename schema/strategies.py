"""Strategy and signal types, the strategy inputs and their payloads, strategy kinds, and
the resolvers of ``strategyKinds``, ``startStrategy`` and ``stopStrategy`` (declared as
fields by ``schema.query.Query`` and ``schema.mutation.Mutation``)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, cast

import strawberry
from strawberry.scalars import JSON

from graphql_api.strategies import definitions as domain
from graphql_api.trading import order_types as order_domain
from resolvers import orders as order_resolvers
from resolvers import strategies as strategy_resolvers
from resolvers.amounts import Amounts, amounts
from resolvers.context import Info
from resolvers.errors import bad_user_input
from resolvers.pagination import check_page_size
from schema.common import UserError, user_errors
from schema.compiled import Amount, Column, Kind, ObjectReads, ToMany, ToOne
from schema.enums import KlineInterval, OrderSide, StrategyKind, StrategyStatus
from schema.market import Symbol, symbol_of
from schema.orders import Order
from storage import models
from storage import timeseries as ts


@strawberry.type(description="A trading strategy of the calling user.")
class Strategy:
    id: strawberry.ID = strawberry.field(description="Strategy id.")
    name: str = strawberry.field(description="Display name.")
    kind: StrategyKind = strawberry.field(description="Which signal rule it runs.")
    interval: KlineInterval = strawberry.field(description="Bar width it evaluates on.")
    parameters: JSON = strawberry.field(description="Parameters of its kind, defaults filled in.")
    status: StrategyStatus = strawberry.field(description="STOPPED, RUNNING or ERROR.")
    auto_trade: bool = strawberry.field(description="Whether signals place paper orders.")
    created_at: datetime = strawberry.field(description="Creation time.")
    updated_at: datetime = strawberry.field(description="Last change.")
    symbol_code: strawberry.Private[str]

    # The compiled read path (docs/compiled_reads.md). ``parameters`` is JSON whose
    # numbers the database would print its own way: it takes the standard path.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="strategies",
        fields={
            "id": Column("id", Kind.ID),
            "name": Column("name", Kind.TEXT),
            "kind": Column("kind", Kind.ENUM),
            "interval": Column("interval", Kind.ENUM),
            "status": Column("status", Kind.ENUM),
            "autoTrade": Column("auto_trade", Kind.BOOL),
            "createdAt": Column("created_at", Kind.TIME),
            "updatedAt": Column("updated_at", Kind.TIME),
            "symbol": ToOne(local="symbol_code", remote="code"),
            "orders": ToMany(
                local="id",
                remote="strategy_id",
                key="id",
                descending=True,
                arguments=frozenset({"first"}),
                limit=lambda arguments, cap: check_page_size(arguments["first"], cap),
            ),
            "signals": ToMany(
                local="id",
                remote="strategy_id",
                key="id",
                descending=True,
                arguments=frozenset({"first"}),
                limit=lambda arguments, cap: check_page_size(arguments["first"], cap),
            ),
        },
    )

    @classmethod
    def from_row(cls, row: models.Strategy) -> Strategy:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            kind=domain.StrategyKind(row.kind),
            interval=ts.KlineInterval(row.interval),
            parameters=cast(JSON, row.parameters),
            status=domain.StrategyStatus(row.status),
            auto_trade=row.auto_trade,
            created_at=row.created_at,
            updated_at=row.updated_at,
            symbol_code=row.symbol_code,
        )

    @strawberry.field(description="The instrument it trades.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)

    @strawberry.field(description="Its newest orders, newest first.")
    async def orders(self, info: Info, first: int = 20) -> list[Order]:
        rows = await order_resolvers.strategy_orders(info, int(self.id), first)
        scale = amounts(info)
        return [Order.from_row(row, scale) for row in rows]

    @strawberry.field(description="Its newest signals, newest first.")
    async def signals(self, info: Info, first: int = 20) -> list[Signal]:
        rows = await strategy_resolvers.signals(info, int(self.id), first)
        scale = amounts(info)
        return [Signal.from_row(row, scale) for row in rows]


@strawberry.type(description="A buy or sell signal a strategy emitted on a closed bar.")
class Signal:
    id: strawberry.ID = strawberry.field(description="Signal id.")
    side: OrderSide = strawberry.field(description="BUY or SELL.")
    price: Decimal = strawberry.field(description="Bar close the signal fired on.")
    bar_time: datetime = strawberry.field(description="Start of the bar that produced it.")
    reason: str = strawberry.field(description='Why, e.g. "SMA(5) crossed above SMA(20)".')
    created_at: datetime = strawberry.field(description="When it was stored.")
    strategy_id: strawberry.Private[int]
    symbol_code: strawberry.Private[str]

    # The compiled read path (docs/compiled_reads.md): the price at the tick size.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="signals",
        fields={
            "id": Column("id", Kind.ID),
            "side": Column("side", Kind.ENUM),
            "price": Amount("price", step="tick_size", step_via="symbol_code"),
            "barTime": Column("bar_time", Kind.TIME),
            "reason": Column("reason", Kind.TEXT),
            "createdAt": Column("created_at", Kind.TIME),
            "strategy": ToOne(local="strategy_id", remote="id"),
            "symbol": ToOne(local="symbol_code", remote="code"),
        },
    )

    @classmethod
    def from_row(cls, row: models.Signal, scale: Amounts) -> Signal:
        return cls(
            id=strawberry.ID(str(row.id)),
            side=order_domain.OrderSide(row.side),
            price=scale.price(row.price, row.symbol_code),
            bar_time=row.bar_time,
            reason=row.reason,
            created_at=row.created_at,
            strategy_id=row.strategy_id,
            symbol_code=row.symbol_code,
        )

    @strawberry.field(description="The strategy that emitted it, as it is now.")
    async def strategy(self, info: Info) -> Strategy | None:
        row = await strategy_resolvers.strategy_by_id(info, self.strategy_id)
        return Strategy.from_row(row) if row is not None else None

    @strawberry.field(description="The instrument.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)


@strawberry.input(description="A new strategy. It starts STOPPED.")
class CreateStrategyInput:
    name: str = strawberry.field(description="Display name, 1-128 characters.")
    kind: StrategyKind = strawberry.field(description="Signal rule.")
    symbol: str = strawberry.field(description="Symbol code to trade.")
    interval: KlineInterval = strawberry.field(
        default=ts.KlineInterval.MINUTE_1, description="Bar width to evaluate on."
    )
    parameters: JSON | None = strawberry.field(
        default=None, description="Parameters of the kind as a JSON object; omitted ones default."
    )
    auto_trade: bool = strawberry.field(default=False, description="Place orders on signals.")

    def to_draft(self) -> domain.StrategyDraft:
        return domain.StrategyDraft(
            name=self.name,
            kind=domain.StrategyKind(self.kind.value),
            symbol=self.symbol.upper(),
            interval=ts.KlineInterval(self.interval.value),
            parameters=_parameters(self.parameters),
            auto_trade=self.auto_trade,
        )


@strawberry.input(description="Changes to a strategy; omitted fields stay as they are.")
class UpdateStrategyInput:
    id: strawberry.ID = strawberry.field(description="Strategy to change.")
    name: str | None = strawberry.field(default=None, description="New name.")
    kind: StrategyKind | None = strawberry.field(
        default=None, description="New kind (parameters reset to its defaults unless given)."
    )
    symbol: str | None = strawberry.field(default=None, description="New symbol.")
    interval: KlineInterval | None = strawberry.field(default=None, description="New interval.")
    parameters: JSON | None = strawberry.field(default=None, description="New parameters.")
    auto_trade: bool | None = strawberry.field(default=None, description="New auto-trade flag.")

    def to_draft(self) -> domain.StrategyDraft:
        return domain.StrategyDraft(
            name=self.name,
            kind=domain.StrategyKind(self.kind.value) if self.kind else None,
            symbol=self.symbol.upper() if self.symbol else None,
            interval=ts.KlineInterval(self.interval.value) if self.interval else None,
            parameters=_parameters(self.parameters),
            auto_trade=self.auto_trade,
        )


def _parameters(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_user_input("parameters must be a JSON object", argument="parameters")
    return value


@strawberry.type(description="Result of createStrategy / updateStrategy.")
class StrategyPayload:
    strategy: Strategy | None = strawberry.field(description="The strategy; null on errors.")
    user_errors: list[UserError] = strawberry.field(description="Problems with the input.")


@strawberry.type(description="Result of deleteStrategy.")
class DeleteStrategyPayload:
    deleted_strategy_id: strawberry.ID | None = strawberry.field(
        description="Id of the deleted strategy; null on errors."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it was not deleted.")


def strategy_or_none(row: models.Strategy | None) -> Strategy | None:
    return Strategy.from_row(row) if row is not None else None


# --- strategy kinds --------------------------------------------------------------------------


@strawberry.enum(name="ParameterType", description="How a strategy parameter is read.")
class ParameterType(enum.Enum):
    INT = "int"
    FLOAT = "float"


_KIND_DESCRIPTIONS = {
    "SMA_CROSS": "Buy when the fast simple moving average crosses above the slow one; "
    "sell when it crosses below.",
    "EMA_CROSS": "Buy when the fast exponential moving average crosses above the slow one; "
    "sell when it crosses below.",
    "RSI_REVERSION": "Buy when RSI climbs back above `lower` (leaves oversold); "
    "sell when it falls back below `upper` (leaves overbought).",
    "MACD_CROSS": "Buy when the MACD line crosses above its signal line; sell when it "
    "crosses below.",
    "BOLLINGER_BREAKOUT": "Buy when the close crosses above the upper band; sell when it "
    "crosses below the middle band.",
}


@strawberry.type(description="One tunable parameter of a strategy kind.")
class StrategyParameter:
    name: str = strawberry.field(description="Key in the `parameters` JSON object.")
    type: ParameterType = strawberry.field(description="INT (a count of bars) or FLOAT.")
    default: float = strawberry.field(description="Value used when omitted.")
    minimum: float = strawberry.field(description="Smallest allowed value (inclusive).")
    maximum: float = strawberry.field(description="Largest allowed value (inclusive).")
    description: str = strawberry.field(description="What it controls.")


@strawberry.type(description="A signal rule strategies and backtests can use.")
class StrategyKindInfo:
    kind: StrategyKind = strawberry.field(description="The kind.")
    description: str = strawberry.field(description="Its buy and sell rule.")
    parameters: list[StrategyParameter] = strawberry.field(description="Its parameters.")


def strategy_kinds() -> list[StrategyKindInfo]:
    return [
        StrategyKindInfo(
            kind=StrategyKind(kind),
            description=_KIND_DESCRIPTIONS.get(kind, ""),
            parameters=[
                StrategyParameter(
                    name=spec.name,
                    type=ParameterType(spec.type),
                    default=float(spec.default),
                    minimum=float(spec.minimum),
                    maximum=float(spec.maximum),
                    description=spec.description,
                )
                for spec in specs
            ],
        )
        for kind, specs in strategy_resolvers.strategy_kinds()
    ]


# --- start / stop ----------------------------------------------------------------------------


async def start_strategy(info: Info, id: strawberry.ID) -> StrategyPayload:
    outcome = await strategy_resolvers.start_strategy(info, id)
    return StrategyPayload(
        strategy=strategy_or_none(outcome.strategy), user_errors=user_errors(outcome.errors)
    )


async def stop_strategy(info: Info, id: strawberry.ID) -> StrategyPayload:
    outcome = await strategy_resolvers.stop_strategy(info, id)
    return StrategyPayload(
        strategy=strategy_or_none(outcome.strategy), user_errors=user_errors(outcome.errors)
    )
