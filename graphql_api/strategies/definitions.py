"""Strategy definitions: create, update, delete, with per-kind parameter checks."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graphql_api.market.symbols import SymbolCatalog
from graphql_api.platform.errors import ErrorCode, UserError, error_code_named
from graphql_api.platform.names import check_name
from graphql_api.strategies.rules import ParameterProblem, ProblemCode, validate_parameters
from storage import models
from storage.engine import SessionFactory
from storage.repositories import strategies as strategy_repo
from storage.timeseries import KlineInterval

MAX_NAME_LENGTH = 128


class StrategyKind(enum.Enum):
    SMA_CROSS = "SMA_CROSS"
    EMA_CROSS = "EMA_CROSS"
    RSI_REVERSION = "RSI_REVERSION"
    MACD_CROSS = "MACD_CROSS"
    BOLLINGER_BREAKOUT = "BOLLINGER_BREAKOUT"


class StrategyStatus(enum.Enum):
    STOPPED = "STOPPED"
    RUNNING = "RUNNING"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class StrategyDraft:
    """Fields to set; ``None`` means "leave as is" on update."""

    name: str | None = None
    kind: StrategyKind | None = None
    symbol: str | None = None
    interval: KlineInterval | None = None
    parameters: Mapping[str, Any] | None = None
    auto_trade: bool | None = None


@dataclass(frozen=True, slots=True)
class StrategyOutcome:
    strategy: models.Strategy | None
    errors: list[UserError]


class StrategyService:
    def __init__(self, sessions: SessionFactory, catalog: SymbolCatalog) -> None:
        self._sessions = sessions
        self._catalog = catalog

    async def create(self, user_id: int, draft: StrategyDraft) -> StrategyOutcome:
        errors: list[UserError] = []
        for field, value in (("name", draft.name), ("kind", draft.kind), ("symbol", draft.symbol)):
            if value is None:
                errors.append(UserError(field, ErrorCode.REQUIRED, f"{field} is required"))
        if errors:
            return StrategyOutcome(None, errors)
        assert draft.kind is not None and draft.name is not None and draft.symbol is not None
        parameters, errors = await self._check(draft, kind=draft.kind.value)
        if errors:
            return StrategyOutcome(None, errors)
        now = datetime.now(UTC)
        strategy = models.Strategy(
            user_id=user_id,
            name=draft.name.strip(),
            kind=draft.kind.value,
            symbol_code=draft.symbol,
            interval=(draft.interval or KlineInterval.MINUTE_1).value,
            parameters=parameters,
            status=StrategyStatus.STOPPED.value,
            auto_trade=bool(draft.auto_trade),
            created_at=now,
            updated_at=now,
        )
        async with self._sessions() as session:
            session.add(strategy)
            await session.commit()
        return StrategyOutcome(strategy, [])

    async def update(self, user_id: int, strategy_id: int, draft: StrategyDraft) -> StrategyOutcome:
        async with self._sessions() as session:
            strategy = await strategy_repo.strategy_for_user(session, user_id, strategy_id)
            if strategy is None:
                return _not_found()
            kind = draft.kind.value if draft.kind is not None else strategy.kind
            merged = draft
            if draft.kind is not None and draft.parameters is None:
                # A new kind cannot inherit the old kind's parameters.
                merged = dataclasses.replace(draft, parameters={})
            parameters, errors = await self._check(merged, kind=kind)
            if errors:
                return StrategyOutcome(None, errors)
            if draft.name is not None:
                strategy.name = draft.name.strip()
            if draft.kind is not None:
                strategy.kind = draft.kind.value
            if draft.symbol is not None:
                strategy.symbol_code = draft.symbol
            if draft.interval is not None:
                strategy.interval = draft.interval.value
            if merged.parameters is not None:
                strategy.parameters = parameters
            if draft.auto_trade is not None:
                strategy.auto_trade = draft.auto_trade
            strategy.updated_at = datetime.now(UTC)
            await session.commit()
        return StrategyOutcome(strategy, [])

    async def delete(self, user_id: int, strategy_id: int) -> StrategyOutcome:
        async with self._sessions() as session:
            strategy = await strategy_repo.strategy_for_user(session, user_id, strategy_id)
            if strategy is None:
                return _not_found()
            if strategy.status == StrategyStatus.RUNNING.value:
                return StrategyOutcome(
                    strategy,
                    [
                        UserError(
                            "id", ErrorCode.NOT_ALLOWED, "stop the strategy before deleting it"
                        )
                    ],
                )
            await session.delete(strategy)
            await session.commit()
        return StrategyOutcome(strategy, [])

    async def _check(
        self, draft: StrategyDraft, *, kind: str
    ) -> tuple[dict[str, Any], list[UserError]]:
        errors: list[UserError] = []
        if draft.name is not None:
            errors += check_name("name", draft.name, max_length=MAX_NAME_LENGTH)
        if draft.symbol is not None and not await self._catalog.get_many([draft.symbol]):
            errors.append(
                UserError("symbol", ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {draft.symbol!r}")
            )
        parameters: dict[str, Any] = {}
        if draft.parameters is not None or draft.kind is not None:
            normalised, problems = validate_parameters(kind, draft.parameters or {})
            parameters = dict(normalised)
            errors += parameter_errors(problems)
        return parameters, errors


def parameter_errors(problems: Iterable[ParameterProblem]) -> list[UserError]:
    """The user errors of a strategy's parameter problems (an unknown kind is the
    ``kind`` field's)."""
    return [
        UserError(
            "kind" if problem.code == ProblemCode.UNKNOWN_KIND else problem.field,
            error_code_named(problem.code),
            problem.message,
        )
        for problem in problems
    ]


def _not_found() -> StrategyOutcome:
    return StrategyOutcome(None, [UserError("id", ErrorCode.NOT_FOUND, "strategy not found")])
