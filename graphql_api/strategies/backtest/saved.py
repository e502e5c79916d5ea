"""Saved backtests: a run's inputs and its result kept under a name, to list and
compare later.

A backtest reruns to the same answer only while its bars stay as they were;
imports and corrections change history. So a saved run keeps its own result
(the metrics, the round trips and the equity curve), not just the recipe. The
result is stored as JSON with every Decimal as its exact text, every time as
whole microseconds since the epoch and the equity curve's floats as JSON
numbers (Python writes and reads them back bit for bit). It is read back into
the same :class:`~graphql_api.strategies.backtest.engine.BacktestResult` the
engine returns, so the API renders a saved run exactly as it rendered the
fresh one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

import numpy as np
from sqlalchemy import Select, func, select

from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.names import check_name
from graphql_api.strategies.backtest.engine import BacktestResult, Trade
from graphql_api.strategies.backtest.service import BacktestRequest
from storage import models
from storage.engine import SessionFactory
from storage.repositories.keyset import ListOrder
from storage.timeseries import KlineInterval

MAX_NAME_LENGTH = 128
# Each saved run holds its equity curve (up to the backtest's bar limit); a cap
# per user keeps one account from filling the database.
MAX_SAVED_PER_USER = 200
FORMAT_VERSION = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Saved runs are listed newest first, keyset on the id.
SAVED_LIST = ListOrder(models.SavedBacktest.id, descending=True)


@dataclass(frozen=True, slots=True)
class SavedBacktest:
    """A stored run as it was computed."""

    id: int
    name: str
    created_at: datetime
    request: BacktestRequest
    result: BacktestResult


@dataclass(frozen=True, slots=True)
class SaveOutcome:
    saved: SavedBacktest | None
    errors: list[UserError]


def _micros(moment: datetime) -> int:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def encode_request(request: BacktestRequest) -> dict[str, Any]:
    """The inputs as JSON: the symbol as listed, times as UTC microseconds."""
    return {
        "kind": request.kind,
        "parameters": dict(request.parameters),
        "symbol": request.symbol.strip().upper(),
        "start": _micros(request.start),
        "end": _micros(request.end),
        "interval": request.interval.value,
        "initialCash": str(request.initial_cash),
        "commissionRate": str(request.commission_rate),
        "allowShort": request.allow_short,
        "fixedQuantity": _text(request.fixed_quantity),
    }


def decode_request(data: Mapping[str, Any]) -> BacktestRequest:
    return BacktestRequest(
        kind=data["kind"],
        parameters=dict(data["parameters"]),
        symbol=data["symbol"],
        start=_moment(data["start"]),
        end=_moment(data["end"]),
        interval=KlineInterval(data["interval"]),
        initial_cash=Decimal(data["initialCash"]),
        commission_rate=Decimal(data["commissionRate"]),
        allow_short=data["allowShort"],
        fixed_quantity=_decimal(data["fixedQuantity"]),
    )


def encode_result(result: BacktestResult) -> dict[str, Any]:
    """The result as JSON, exact: Decimals as text, times as microseconds."""
    times = np.asarray(result.times, dtype="datetime64[us]").astype(np.int64)
    return {
        "version": FORMAT_VERSION,
        "initialCash": str(result.initial_cash),
        "finalEquity": str(result.final_equity),
        "totalCommission": str(result.total_commission),
        "totalReturnPct": result.total_return_pct,
        "cagrPct": result.cagr_pct,
        "sharpe": result.sharpe,
        "maxDrawdownPct": result.max_drawdown_pct,
        "winRatePct": result.win_rate_pct,
        "tradeCount": result.trade_count,
        "exposurePct": result.exposure_pct,
        "times": times.tolist(),
        "equity": np.asarray(result.equity, dtype=np.float64).tolist(),
        "trades": [
            {
                "side": trade.side,
                "quantity": str(trade.quantity),
                "entryIndex": trade.entry_index,
                "entryTime": _micros(trade.entry_time),
                "entryPrice": str(trade.entry_price),
                "exitIndex": trade.exit_index,
                "exitTime": _micros(trade.exit_time),
                "exitPrice": str(trade.exit_price),
                "commission": str(trade.commission),
                "pnl": str(trade.pnl),
                "returnPct": trade.return_pct,
            }
            for trade in result.trades
        ],
    }


def decode_result(data: Mapping[str, Any]) -> BacktestResult:
    return BacktestResult(
        initial_cash=Decimal(data["initialCash"]),
        final_equity=Decimal(data["finalEquity"]),
        total_commission=Decimal(data["totalCommission"]),
        total_return_pct=data["totalReturnPct"],
        cagr_pct=data["cagrPct"],
        sharpe=data["sharpe"],
        max_drawdown_pct=data["maxDrawdownPct"],
        win_rate_pct=data["winRatePct"],
        trade_count=data["tradeCount"],
        exposure_pct=data["exposurePct"],
        times=np.asarray(data["times"], dtype=np.int64).astype("datetime64[us]"),
        equity=np.asarray(data["equity"], dtype=np.float64),
        trades=tuple(
            Trade(
                side=cast(Literal["LONG", "SHORT"], trade["side"]),
                quantity=Decimal(trade["quantity"]),
                entry_index=trade["entryIndex"],
                entry_time=_moment(trade["entryTime"]),
                entry_price=Decimal(trade["entryPrice"]),
                exit_index=trade["exitIndex"],
                exit_time=_moment(trade["exitTime"]),
                exit_price=Decimal(trade["exitPrice"]),
                commission=Decimal(trade["commission"]),
                pnl=Decimal(trade["pnl"]),
                return_pct=trade["returnPct"],
            )
            for trade in data["trades"]
        ),
    )


def from_row(row: models.SavedBacktest) -> SavedBacktest:
    return SavedBacktest(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        request=decode_request(row.request),
        result=decode_result(row.result),
    )


def saved_query(user_id: int, *, symbol: str | None, kind: str | None) -> Select[Any]:
    """The user's saved runs, narrowed by symbol and kind (for a keyset page)."""
    query = select(models.SavedBacktest).where(models.SavedBacktest.user_id == user_id)
    if symbol is not None:
        query = query.where(models.SavedBacktest.symbol_code == symbol.strip().upper())
    if kind is not None:
        query = query.where(models.SavedBacktest.kind == kind)
    return query


def check_save_name(name: str) -> list[UserError]:
    return check_name("saveAs", name, max_length=MAX_NAME_LENGTH)


def _not_found(field: str = "id") -> list[UserError]:
    return [UserError(field, ErrorCode.NOT_FOUND, "no such backtest")]


class SavedBacktests:
    """Stores, finds and deletes a user's saved runs; one transaction each."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def save(
        self, user_id: int, name: str, request: BacktestRequest, result: BacktestResult
    ) -> SaveOutcome:
        errors = check_save_name(name)
        if errors:
            return SaveOutcome(None, errors)
        encoded = encode_request(request)
        async with self._sessions() as session:
            held = await session.scalar(
                select(func.count())
                .select_from(models.SavedBacktest)
                .where(models.SavedBacktest.user_id == user_id)
            )
            if (held or 0) >= MAX_SAVED_PER_USER:
                return SaveOutcome(
                    None,
                    [
                        UserError(
                            "saveAs",
                            ErrorCode.OUT_OF_RANGE,
                            f"at most {MAX_SAVED_PER_USER} saved backtests per user; "
                            "delete some first",
                        )
                    ],
                )
            row = models.SavedBacktest(
                user_id=user_id,
                name=name.strip(),
                kind=request.kind,
                symbol_code=encoded["symbol"],
                request=encoded,
                result=encode_result(result),
                created_at=datetime.now(UTC),
            )
            session.add(row)
            await session.commit()
            return SaveOutcome(from_row(row), [])

    async def get(self, user_id: int, backtest_id: int) -> SavedBacktest | None:
        """The run, or None when there is none of this user's with that id."""
        async with self._sessions() as session:
            row = await session.get(models.SavedBacktest, backtest_id)
        return from_row(row) if row is not None and row.user_id == user_id else None

    async def delete(self, user_id: int, backtest_id: int) -> list[UserError]:
        async with self._sessions() as session:
            row = await session.get(models.SavedBacktest, backtest_id)
            if row is None or row.user_id != user_id:
                return _not_found()
            await session.delete(row)
            await session.commit()
        return []
