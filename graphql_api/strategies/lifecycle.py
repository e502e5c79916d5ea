"""Starting and stopping strategies: the only ways a strategy's status changes by request.

Valid transitions: STOPPED or ERROR -> RUNNING (start), RUNNING -> STOPPED
(stop). Anything else is a NOT_ALLOWED user error; a strategy that does not
exist or belongs to someone else is NOT_FOUND. Each transition is one
conditional UPDATE (``... WHERE status IN (...)``), so two concurrent starts
cannot both succeed, on any process.

A start clears ``last_bar_at`` and ``evaluated_from``: the strategy goes live
from the current bar, as new, with indicator state warmed up on the bars just
before it (not carried over from its previous run), and never emits signals
for bars that closed while it was stopped. With the
commit, the change is announced on
:data:`~graphql_api.realtime.channels.CONTROL_CHANNEL` so the strategy engine
(wherever the cluster runs it) picks it up at once instead of at its next
poll. The announcement is staged in the transition's transaction (see
:mod:`graphql_api.realtime.outbox`), so a bus outage delays it but never loses it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, update

from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.realtime.channels import CONTROL_CHANNEL
from graphql_api.realtime.events import encode_id_event
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.strategies.definitions import StrategyOutcome, StrategyStatus, parameter_errors
from graphql_api.strategies.rules import validate_parameters
from storage import models
from storage.engine import SessionFactory
from storage.repositories import strategies as strategy_repo

__all__ = ["start_strategy", "stop_strategy"]


async def start_strategy(
    sessions: SessionFactory, outbox: EventOutbox, user_id: int, strategy_id: int
) -> StrategyOutcome:
    async with sessions() as session:
        strategy = await strategy_repo.strategy_for_user(session, user_id, strategy_id)
        if strategy is None:
            return _not_found()
        _, problems = validate_parameters(strategy.kind, strategy.parameters or {})
        if problems:
            # Only possible for rows written before a rule changed; say what to fix.
            return StrategyOutcome(strategy, parameter_errors(problems))
    return await _transition(
        sessions,
        outbox,
        user_id,
        strategy_id,
        allowed_from=(StrategyStatus.STOPPED, StrategyStatus.ERROR),
        to=StrategyStatus.RUNNING,
        values={"status_reason": None, "last_bar_at": None, "evaluated_from": None},
    )


async def stop_strategy(
    sessions: SessionFactory, outbox: EventOutbox, user_id: int, strategy_id: int
) -> StrategyOutcome:
    return await _transition(
        sessions,
        outbox,
        user_id,
        strategy_id,
        allowed_from=(StrategyStatus.RUNNING,),
        to=StrategyStatus.STOPPED,
        values={"status_reason": None},
    )


async def _transition(
    sessions: SessionFactory,
    outbox: EventOutbox,
    user_id: int,
    strategy_id: int,
    *,
    allowed_from: Collection[StrategyStatus],
    to: StrategyStatus,
    values: dict[str, Any],
) -> StrategyOutcome:
    now = datetime.now(UTC)
    async with sessions() as session:
        result = cast(
            CursorResult[Any],
            await session.execute(
                update(models.Strategy)
                .where(
                    models.Strategy.id == strategy_id,
                    models.Strategy.user_id == user_id,
                    models.Strategy.status.in_([status.value for status in allowed_from]),
                )
                .values(status=to.value, updated_at=now, **values)
                .execution_options(synchronize_session=False)
            ),
        )
        if result.rowcount:
            outbox.stage(
                session, CONTROL_CHANNEL, encode_id_event("strategy", strategy_id, status=to.value)
            )
        await session.commit()
        strategy = await strategy_repo.strategy_for_user(session, user_id, strategy_id)
    if strategy is None:
        return _not_found()
    if result.rowcount == 0:
        return StrategyOutcome(
            strategy,
            [UserError("id", ErrorCode.NOT_ALLOWED, _refusal(strategy.status, allowed_from, to))],
        )
    return StrategyOutcome(strategy, [])


def _refusal(status: str, allowed_from: Collection[StrategyStatus], to: StrategyStatus) -> str:
    if status == to.value:
        return f"strategy is already {status}"
    sources = " or ".join(source.value for source in allowed_from)
    return f"strategy is {status}; only a {sources} strategy can become {to.value}"


def _not_found() -> StrategyOutcome:
    return StrategyOutcome(None, [UserError("id", ErrorCode.NOT_FOUND, "strategy not found")])
