"""Placing a batch of validated orders in one transaction (group commit's write step).

Each order is decided exactly as if it had been placed alone, one after the
other in arrival order: the account snapshot (cash, position, reservations) is
read once per account for the batch, with the balance rows locked, and every
order accepted into the batch adds its own reservation to the snapshot before
the next order of the same account is assessed. So an order can never spend
what an earlier order of the batch reserved, and the verdicts are those of
sequential placement, for a handful of queries per batch instead of per order.

Idempotency keeps its per-order meaning: a ``clientOrderId`` already stored is
a replay (or a conflict); the same ``clientOrderId`` twice in one batch makes
the second a replay of the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.market.symbols import SymbolSpec
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.trading.order_types import (
    OrderRequest,
    OrderSide,
    OrderStatus,
    TimeInForce,
)
from graphql_api.trading.risk import Assessment, Exposure, RiskPolicy, assess, reserved_cash
from storage import models
from storage.repositories import accounts as account_repo
from storage.repositories import orders as order_repo
from storage.repositories import reservations
from storage.repositories import strategies as strategy_repo
from storage.repositories import symbols as symbol_repo
from storage.timeseries import Tick


@dataclass(frozen=True, slots=True)
class Placement:
    """One validated order waiting for its batch: who places it and its symbol's spec."""

    user_id: int
    request: OrderRequest
    spec: SymbolSpec
    currency: str


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    order: models.Order | None
    errors: list[UserError]


@dataclass(slots=True)
class _Account:
    """A mutable exposure snapshot: reservations grow as the batch accepts orders."""

    cash: Decimal
    reserved_cash: Decimal

    def position_view(self, position: Decimal, reserved_sell: Decimal) -> Exposure:
        return Exposure(self.cash, self.reserved_cash, position, reserved_sell)


async def place_batch(
    session: AsyncSession,
    placements: Sequence[Placement],
    *,
    quotes: dict[str, Tick],
    policy: RiskPolicy,
    now: datetime,
) -> tuple[list[OrderOutcome], list[models.Order]]:
    """Decide and add every placement's order to ``session`` (flushed, not committed).

    Returns each placement's outcome, in order, and the orders created (replays
    return stored orders and create none).
    """
    strategy_owner = await strategy_repo.strategy_owners(
        session, [p.request.strategy_id for p in placements if p.request.strategy_id is not None]
    )
    stored = await order_repo.orders_by_client_ids(
        session,
        [
            (p.user_id, p.request.client_order_id)
            for p in placements
            if p.request.client_order_id is not None
        ],
    )
    account_keys = sorted({(p.user_id, p.currency) for p in placements})
    # Only a SELL is assessed against the position and what open SELLs hold of it.
    position_keys = sorted(
        {(p.user_id, p.spec.code) for p in placements if p.request.side is OrderSide.SELL}
    )
    # The locked balance rows carry what open BUYs reserve (kept by every order
    # change, see storage.repositories.reservations): no sum over open orders.
    # (SQLite has no row locks: there the batch takes the database's write lock.)
    await order_repo.begin_writing(session)
    balances = await account_repo.lock_balances(session, account_keys)
    positions = await account_repo.positions_for(session, position_keys)
    reserved_sells = await reservations.reserved_quantity(session, position_keys)
    previous_close = await _previous_closes(session, placements, quotes)

    accounts = {
        key: _Account(
            cash=balances[key].amount if key in balances else Decimal(0),
            reserved_cash=(
                reservations.with_commission(
                    balances[key].reserved_notional, policy.commission_rate
                )
                if key in balances
                else Decimal(0)
            ),
        )
        for key in account_keys
    }
    sell_reserved = dict(reserved_sells)
    changes = reservations.ReservationChanges()
    outcomes: list[OrderOutcome] = []
    new_orders: list[models.Order] = []
    for placement in placements:
        user_id, request = placement.user_id, placement.request
        if request.strategy_id is not None and strategy_owner.get(request.strategy_id) != user_id:
            outcomes.append(
                OrderOutcome(
                    None, [UserError("strategyId", ErrorCode.NOT_FOUND, "strategy not found")]
                )
            )
            continue
        client_key = (
            (user_id, request.client_order_id) if request.client_order_id is not None else None
        )
        if client_key is not None and client_key in stored:
            outcomes.append(replay(stored[client_key], request))
            continue
        account = accounts[(user_id, placement.currency)]
        position_key = (user_id, placement.spec.code)
        position = positions.get(position_key)
        exposure = account.position_view(
            position.quantity if position else Decimal(0),
            sell_reserved.get(position_key, Decimal(0)),
        )
        quote = quotes.get(placement.spec.code)
        verdict = assess(
            request,
            placement.spec,
            quote,
            exposure,
            policy,
            previous_close.get(placement.spec.code),
            market_open=placement.spec.session.is_open(now),
        )
        order = new_order(placement, verdict, now)
        if verdict.reject is None:
            changes.order_changed(order, Decimal(0))
            if request.side is OrderSide.BUY:
                assert verdict.reserve_price is not None
                account.reserved_cash += reserved_cash(
                    request.quantity, verdict.reserve_price, policy.commission_rate
                )
            else:
                sell_reserved[position_key] = (
                    sell_reserved.get(position_key, Decimal(0)) + request.quantity
                )
        if client_key is not None:
            stored[client_key] = order  # the same clientOrderId later in the batch replays it
        new_orders.append(order)
        outcomes.append(OrderOutcome(order, []))
    await order_repo.insert_new(session, new_orders)
    await reservations.write(
        session,
        changes,
        now=now,
        currency_of={p.spec.code: p.currency for p in placements},
    )
    return outcomes, new_orders


def new_order(placement: Placement, verdict: Assessment, now: datetime) -> models.Order:
    """The row for a decided order: NEW, or REJECTED with the policy's reason."""
    request, spec = placement.request, placement.spec
    accepted = verdict.reject is None
    return models.Order(
        user_id=placement.user_id,
        client_order_id=request.client_order_id,
        symbol_code=request.symbol,
        strategy_id=request.strategy_id,
        side=request.side.value,
        type=request.type.value,
        time_in_force=request.time_in_force.value,
        quantity=request.quantity,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
        status=OrderStatus.NEW.value if accepted else OrderStatus.REJECTED.value,
        filled_quantity=Decimal(0),
        average_fill_price=None,
        reject_reason=verdict.reject.value if verdict.reject else None,
        reserve_price=verdict.reserve_price,
        expires_at=expires_at(request, spec, now),
        version=0,
        created_at=now,
        updated_at=now,
    )


def expires_at(request: OrderRequest, spec: SymbolSpec, now: datetime) -> datetime | None:
    """When the order expires: a DAY order at the close of its symbol's trading day
    (the one in progress, or the next one for an order placed between days), a GTD
    order at its own ``expires_at`` (in UTC); the others never do."""
    if request.time_in_force is TimeInForce.DAY:
        return spec.session.day_close(now)
    if request.time_in_force is TimeInForce.GTD and request.expires_at is not None:
        return request.expires_at.astimezone(UTC)
    return None


def replay(existing: models.Order, request: OrderRequest) -> OrderOutcome:
    """Idempotency: the same request again gets the same order; a different one is a conflict."""
    same = (
        existing.symbol_code == request.symbol
        and existing.side == request.side.value
        and existing.type == request.type.value
        and existing.quantity == request.quantity
        and existing.limit_price == request.limit_price
        and existing.stop_price == request.stop_price
        and existing.time_in_force == request.time_in_force.value
        and existing.strategy_id == request.strategy_id
        and (
            request.time_in_force is not TimeInForce.GTD
            or _as_utc(existing.expires_at) == _as_utc(request.expires_at)
        )
    )
    if same:
        return OrderOutcome(existing, [])
    return OrderOutcome(
        None,
        [
            UserError(
                "clientOrderId",
                ErrorCode.CONFLICT,
                "clientOrderId was already used for a different order",
            )
        ],
    )


def _as_utc(time: datetime | None) -> datetime | None:
    """Comparable across databases: a stored time may come back without its offset."""
    if time is None:
        return None
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)


async def _previous_closes(
    session: AsyncSession, placements: Sequence[Placement], quotes: dict[str, Tick]
) -> dict[str, Decimal]:
    """The latest daily close of each symbol without a tick: the price band's centre then."""
    codes = sorted({p.spec.code for p in placements if p.spec.code not in quotes})
    if not codes:
        return {}
    bars = await symbol_repo.latest_daily_bars_by_codes(session, codes, 1)
    return {code: rows[-1].close for code, rows in bars.items() if rows}
