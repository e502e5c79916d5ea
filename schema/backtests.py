"""Backtests: the ``runBacktest`` input, its result (metrics, equity curve, round trips)
and the mutation's resolver, which ``schema.mutation.Mutation`` declares as a field."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import numpy as np
import strawberry
from strawberry.scalars import JSON

from graphql_api.strategies import backtest as engine
from graphql_api.strategies.backtest import saved
from graphql_api.strategies.backtest import service as domain
from resolvers import backtests as resolvers
from resolvers.amounts import Amounts, amounts
from resolvers.context import Info
from resolvers.errors import bad_user_input
from schema.common import UserError, user_errors
from schema.enums import KlineInterval, StrategyKind
from schema.market import Symbol, symbol_of
from storage import timeseries as ts

strawberry.enum(
    domain.TradeSide, name="TradeSide", description="Direction of a backtest round trip."
)
TradeSide = domain.TradeSide


@strawberry.input(description="A backtest of a strategy kind over stored bars.")
class BacktestInput:
    kind: StrategyKind = strawberry.field(description="Signal rule to test.")
    parameters: JSON | None = strawberry.field(
        default=None, description="Parameters of the kind as a JSON object; omitted ones default."
    )
    symbol: str = strawberry.field(description="Symbol code.")
    from_: datetime = strawberry.field(
        name="from", description="Bars starting at or after this time (UTC if no offset)."
    )
    to: datetime = strawberry.field(description="Bars starting before this time.")
    interval: KlineInterval = strawberry.field(
        default=ts.KlineInterval.DAY_1,
        description="Bar width: DAY_1 uses the daily history, intraday widths stored ticks.",
    )
    initial_cash: Decimal = strawberry.field(
        default=domain.DEFAULT_INITIAL_CASH, description="Starting cash."
    )
    commission: Decimal = strawberry.field(
        default=domain.DEFAULT_COMMISSION_RATE,
        description="Commission rate on every fill's notional, in [0, 1).",
    )
    allow_short: bool = strawberry.field(
        default=False, description="Stop-and-reverse into shorts on sell signals."
    )
    fixed_quantity: Decimal | None = strawberry.field(
        default=None,
        description="Trade this quantity (a multiple of the lot size) instead of all the cash.",
    )
    save_as: str | None = strawberry.field(
        default=None,
        description=(
            "Also keep the run (inputs and whole result) under this name, 1-128 characters; "
            "list saved runs with `backtests`."
        ),
    )

    def to_request(self) -> domain.BacktestRequest:
        if self.parameters is not None and not isinstance(self.parameters, dict):
            raise bad_user_input("parameters must be a JSON object", argument="parameters")
        return domain.BacktestRequest(
            kind=self.kind.value,
            parameters=self.parameters or {},
            symbol=self.symbol,
            start=self.from_,
            end=self.to,
            interval=ts.KlineInterval(self.interval.value),
            initial_cash=self.initial_cash,
            commission_rate=self.commission,
            allow_short=self.allow_short,
            fixed_quantity=self.fixed_quantity,
        )


@strawberry.type(description="Equity marked to market at one bar's close.")
class EquityPoint:
    time: datetime = strawberry.field(description="Bar start (UTC).")
    equity: float = strawberry.field(description="Cash plus the position at the close.")


@strawberry.type(description="One round trip of a backtest: entry and exit fills.")
class BacktestTrade:
    side: TradeSide = strawberry.field(description="LONG or SHORT.")
    quantity: Decimal = strawberry.field(description="Quantity traded.")
    entry_time: datetime = strawberry.field(description="Start of the bar whose open filled it.")
    entry_price: Decimal = strawberry.field(description="Entry fill price.")
    exit_time: datetime = strawberry.field(description="Start of the exit bar.")
    exit_price: Decimal = strawberry.field(description="Exit fill price.")
    pnl: Decimal = strawberry.field(description="Profit or loss net of both commissions.")
    commission: Decimal = strawberry.field(description="Entry plus exit commission.")
    return_pct: float = strawberry.field(description="P&L over the entry notional, in percent.")

    @classmethod
    def from_domain(cls, trade: engine.Trade, scale: Amounts, symbol: str) -> BacktestTrade:
        return cls(
            side=domain.TradeSide(trade.side),
            quantity=scale.quantity(trade.quantity, symbol),
            entry_time=trade.entry_time,
            entry_price=scale.price(trade.entry_price, symbol),
            exit_time=trade.exit_time,
            exit_price=scale.price(trade.exit_price, symbol),
            pnl=scale.quote_cash(trade.pnl, symbol),
            commission=scale.quote_cash(trade.commission, symbol),
            return_pct=trade.return_pct,
        )


@strawberry.type(description="Performance of a backtest; see docs/strategies.md for definitions.")
class BacktestResult:
    total_return_pct: float = strawberry.field(description="(final - initial) / initial, in %.")
    cagr_pct: float | None = strawberry.field(
        description="Compound annual growth over calendar time, in %; null if undefined."
    )
    sharpe: float = strawberry.field(description="Annualised Sharpe ratio of per-bar returns.")
    max_drawdown_pct: float = strawberry.field(description="Largest fall from a peak, in %.")
    win_rate_pct: float | None = strawberry.field(
        description="Winning trades over all trades, in %; null without trades."
    )
    trade_count: int = strawberry.field(description="Round trips.")
    exposure_pct: float = strawberry.field(description="Share of bar closes with a position, %.")
    initial_cash: Decimal = strawberry.field(description="Starting cash.")
    final_equity: Decimal = strawberry.field(description="Cash after the last fill.")
    total_commission: Decimal = strawberry.field(description="Commission paid on all fills.")
    outcome: strawberry.Private[engine.BacktestResult]
    scale: strawberry.Private[Amounts]
    symbol: strawberry.Private[str]

    @classmethod
    def from_domain(
        cls, result: engine.BacktestResult, scale: Amounts, symbol: str
    ) -> BacktestResult:
        return cls(
            total_return_pct=result.total_return_pct,
            cagr_pct=result.cagr_pct,
            sharpe=result.sharpe,
            max_drawdown_pct=result.max_drawdown_pct,
            win_rate_pct=result.win_rate_pct,
            trade_count=result.trade_count,
            exposure_pct=result.exposure_pct,
            initial_cash=scale.quote_cash(result.initial_cash, symbol),
            final_equity=scale.quote_cash(result.final_equity, symbol),
            total_commission=scale.quote_cash(result.total_commission, symbol),
            outcome=result,
            scale=scale,
            symbol=symbol,
        )

    @strawberry.field(description="Equity at every bar's close, oldest first.")
    def equity_curve(self) -> list[EquityPoint]:
        times = _datetimes(self.outcome.times)
        return [
            EquityPoint(time=moment, equity=value)
            for moment, value in zip(times, self.outcome.equity.tolist(), strict=True)
        ]

    @strawberry.field(description="Round trips in entry order.")
    def trades(self) -> list[BacktestTrade]:
        return [
            BacktestTrade.from_domain(trade, self.scale, self.symbol)
            for trade in self.outcome.trades
        ]


@strawberry.type(description="A backtest run kept under a name, exactly as it was computed.")
class SavedBacktest:
    id: strawberry.ID = strawberry.field(description="Saved run id.")
    name: str = strawberry.field(description="The name it was saved under.")
    created_at: datetime = strawberry.field(description="When it was run and saved.")
    kind: StrategyKind = strawberry.field(description="Signal rule tested.")
    parameters: JSON = strawberry.field(description="Parameters as given (omitted ones default).")
    from_: datetime = strawberry.field(name="from", description="Bars starting at or after.")
    to: datetime = strawberry.field(description="Bars starting before.")
    interval: KlineInterval = strawberry.field(description="Bar width.")
    initial_cash: Decimal = strawberry.field(description="Starting cash.")
    commission: Decimal = strawberry.field(description="Commission rate on every fill.")
    allow_short: bool = strawberry.field(description="Whether sells reversed into shorts.")
    fixed_quantity: Decimal | None = strawberry.field(description="Fixed trade size, if any.")
    result: BacktestResult = strawberry.field(description="Metrics, equity curve, round trips.")
    symbol_code: strawberry.Private[str]

    @classmethod
    def from_domain(cls, run: saved.SavedBacktest, scale: Amounts) -> SavedBacktest:
        request = run.request
        return cls(
            id=strawberry.ID(str(run.id)),
            name=run.name,
            created_at=run.created_at,
            kind=StrategyKind(request.kind),
            parameters=cast(JSON, dict(request.parameters)),
            from_=request.start,
            to=request.end,
            interval=KlineInterval(request.interval.value),
            initial_cash=request.initial_cash,
            commission=request.commission_rate,
            allow_short=request.allow_short,
            fixed_quantity=request.fixed_quantity,
            result=BacktestResult.from_domain(run.result, scale, request.symbol),
            symbol_code=request.symbol,
        )

    @strawberry.field(description="The instrument tested.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)


@strawberry.type(description="Result of runBacktest.")
class RunBacktestPayload:
    result: BacktestResult | None = strawberry.field(description="Null when the input is unusable.")
    saved: SavedBacktest | None = strawberry.field(
        default=None, description="The stored run, when `saveAs` was given."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Problems with the input."
    )


@strawberry.type(description="Result of deleteBacktest.")
class DeleteBacktestPayload:
    deleted_backtest_id: strawberry.ID | None = strawberry.field(
        description="Id of the deleted run; null on errors."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it was not deleted.")


async def run_backtest(info: Info, input: BacktestInput) -> RunBacktestPayload:
    request = input.to_request()
    if input.save_as is not None:
        problems = saved.check_save_name(input.save_as)
        if problems:  # refused before the run: nothing computed, nothing stored
            return RunBacktestPayload(result=None, user_errors=user_errors(problems))
    outcome = await resolvers.run_backtest(info, request)
    if outcome.result is None:
        return RunBacktestPayload(result=None, user_errors=user_errors(outcome.errors))
    scale = amounts(info)
    symbol = request.symbol.strip().upper()
    result = BacktestResult.from_domain(outcome.result, scale, symbol)
    if input.save_as is None:
        return RunBacktestPayload(result=result)
    stored = await resolvers.save_backtest(info, input.save_as, request, outcome.result)
    if stored.saved is None:
        return RunBacktestPayload(result=None, user_errors=user_errors(stored.errors))
    return RunBacktestPayload(result=result, saved=SavedBacktest.from_domain(stored.saved, scale))


async def delete_backtest(info: Info, id: strawberry.ID) -> DeleteBacktestPayload:
    problems = await resolvers.delete_backtest(info, id)
    return DeleteBacktestPayload(
        deleted_backtest_id=None if problems else id, user_errors=user_errors(problems)
    )


def _datetimes(times: Any) -> list[datetime]:
    naive: list[datetime] = np.asarray(times, dtype="datetime64[us]").tolist()
    return [moment.replace(tzinfo=UTC) for moment in naive]
