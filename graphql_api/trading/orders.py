"""Order entry: validate, make idempotent, check risk, persist, announce.

``place_order`` is the one path every order takes — GraphQL, strategies with
``autoTrade`` and tests alike — so the rules live here once. Malformed orders
(unknown symbol, off-grid price, …) are refused with user errors and leave no
row; well-formed orders that policy refuses are stored as REJECTED with a
reason code, so the user can see what was refused and why.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.market.symbols import SymbolCatalog, SymbolSpec, is_multiple_of
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.names import check_name
from graphql_api.realtime.channels import ORDERS_NEW_CHANNEL, order_channel
from graphql_api.realtime.events import encode_id_event, encode_new_order
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.trading.order_types import (
    MAX_CLIENT_ORDER_ID_LENGTH,
    OPEN_STATUSES,
    OrderRequest,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from graphql_api.trading.risk import Exposure, RiskPolicy, assess
from storage import models
from storage.engine import SessionFactory
from storage.repositories import accounts as account_repo
from storage.repositories import orders as order_repo
from storage.repositories import strategies as strategy_repo
from storage.repositories import symbols as symbol_repo
from storage.timeseries import TimeSeriesStore


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    order: models.Order | None
    errors: list[UserError]


class OrderService:
    """Parameters:
    sessions: one transaction per call.
    catalog: symbol metadata for validation.
    timeseries: latest quotes for market-order estimates and the price band.
    outbox: announces order changes on ``orders.<user id>`` and new orders to the
        matcher, staged in the transaction that makes the change: an order the
        caller is told about is announced, even if the bus is down right now.
    risk_policy: commission, notional cap, price band, market-order buffer, short selling.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        catalog: SymbolCatalog,
        timeseries: TimeSeriesStore,
        outbox: EventOutbox,
        risk_policy: RiskPolicy,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._timeseries = timeseries
        self._outbox = outbox
        self.risk_policy = risk_policy
        # Serialises one user's placements in this process; across processes the
        # balance row lock (PostgreSQL) does the same.
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def place_order(self, user_id: int, request: OrderRequest) -> OrderOutcome:
        errors, spec = await self._validate(request)
        if errors:
            return OrderOutcome(None, errors)
        assert spec is not None
        async with self._user_locks[user_id], self._sessions() as session:
            if request.strategy_id is not None and (
                await strategy_repo.strategy_for_user(session, user_id, request.strategy_id) is None
            ):
                return OrderOutcome(
                    None, [UserError("strategyId", ErrorCode.NOT_FOUND, "strategy not found")]
                )
            if request.client_order_id is not None:
                existing = await order_repo.order_by_client_id(
                    session, user_id, request.client_order_id
                )
                if existing is not None:
                    return _replay(existing, request)
            try:
                order = await self._accept_or_reject(session, user_id, request, spec)
                self.announce(session, order)
                if order.status == OrderStatus.NEW.value:
                    self._outbox.stage(session, ORDERS_NEW_CHANNEL, encode_new_order(order))
                await session.commit()
            except IntegrityError:
                # A concurrent request with the same clientOrderId (in another
                # process: this one serialises a user's placements) won the race.
                # PostgreSQL reports it at the flush that assigns the order's id,
                # SQLite at the commit; either way the stored order is the answer.
                await session.rollback()
                assert request.client_order_id is not None
                existing = await order_repo.order_by_client_id(
                    session, user_id, request.client_order_id
                )
                if existing is None:
                    raise
                return _replay(existing, request)
        return OrderOutcome(order, [])

    async def cancel_order(self, user_id: int, order_id: int) -> OrderOutcome:
        async with self._sessions() as session:
            order = await order_repo.order_for_user(session, user_id, order_id, for_update=True)
            if order is None:
                return OrderOutcome(None, [UserError("id", ErrorCode.NOT_FOUND, "order not found")])
            if order.status not in OPEN_STATUSES:
                return OrderOutcome(
                    order,
                    [
                        UserError(
                            "id",
                            ErrorCode.NOT_CANCELABLE,
                            f"order is {order.status}; only NEW or PARTIALLY_FILLED orders "
                            "can be canceled",
                        )
                    ],
                )
            # Reservations are derived from open orders, so closing the order
            # releases its cash or quantity in the same commit.
            order.status = OrderStatus.CANCELED.value
            order.version += 1
            order.updated_at = datetime.now(UTC)
            self.announce(session, order)
            await session.commit()
        return OrderOutcome(order, [])

    def announce(self, session: AsyncSession, order: models.Order) -> None:
        """Stage ``order``'s change in ``session``: published once (and only if) it commits."""
        self._outbox.stage(
            session,
            order_channel(order.user_id),
            encode_id_event("order", order.id, status=order.status, version=order.version),
        )

    async def exposure(
        self, session: AsyncSession, user_id: int, spec: SymbolSpec, currency: str
    ) -> Exposure:
        # Locking the balance row serialises this user's placements across processes.
        balance = await account_repo.balance(session, user_id, currency, for_update=True)
        position = await account_repo.position(session, user_id, spec.code)
        return Exposure(
            cash=balance.amount if balance else Decimal(0),
            reserved_cash=await account_repo.reserved_for_buys(
                session, user_id, currency, self.risk_policy.commission_rate
            ),
            position=position.quantity if position else Decimal(0),
            reserved_sell=await account_repo.reserved_for_sells(session, user_id, spec.code),
        )

    async def _accept_or_reject(
        self, session: AsyncSession, user_id: int, request: OrderRequest, spec: SymbolSpec
    ) -> models.Order:
        currency = await self._catalog.currency_of(spec.code)
        quote = (await self._timeseries.latest_ticks([spec.code])).get(spec.code)
        exposure = await self.exposure(session, user_id, spec, currency)
        previous_close = None if quote is not None else await _last_close(session, spec.code)
        verdict = assess(request, spec, quote, exposure, self.risk_policy, previous_close)
        now = datetime.now(UTC)
        order = models.Order(
            user_id=user_id,
            client_order_id=request.client_order_id,
            symbol_code=request.symbol,
            strategy_id=request.strategy_id,
            side=request.side.value,
            type=request.type.value,
            time_in_force=request.time_in_force.value,
            quantity=request.quantity,
            limit_price=request.limit_price,
            status=OrderStatus.NEW.value if verdict.reject is None else OrderStatus.REJECTED.value,
            filled_quantity=Decimal(0),
            average_fill_price=None,
            reject_reason=verdict.reject.value if verdict.reject else None,
            reserve_price=verdict.reserve_price,
            expires_at=(
                session_end(now, spec.session_close_utc_minute)
                if request.time_in_force is TimeInForce.DAY
                else None
            ),
            version=0,
            created_at=now,
            updated_at=now,
        )
        session.add(order)
        await session.flush()
        return order

    async def _validate(self, request: OrderRequest) -> tuple[list[UserError], SymbolSpec | None]:
        errors: list[UserError] = []
        spec = (await self._catalog.get_many([request.symbol])).get(request.symbol)
        if spec is None:
            errors.append(
                UserError("symbol", ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {request.symbol!r}")
            )
        if not request.quantity.is_finite() or request.quantity <= 0:
            errors.append(
                UserError("quantity", ErrorCode.OUT_OF_RANGE, "quantity must be positive")
            )
        elif spec is not None and not is_multiple_of(request.quantity, spec.lot_size):
            errors.append(
                UserError(
                    "quantity",
                    ErrorCode.INVALID_PRECISION,
                    f"quantity {request.quantity} is not a multiple of the lot size "
                    f"{spec.lot_size}",
                )
            )
        if request.type is OrderType.LIMIT:
            price = request.limit_price
            if price is None:
                errors.append(
                    UserError("limitPrice", ErrorCode.REQUIRED, "a LIMIT order needs a limitPrice")
                )
            elif not price.is_finite() or price <= 0:
                errors.append(
                    UserError("limitPrice", ErrorCode.OUT_OF_RANGE, "limitPrice must be positive")
                )
            elif spec is not None and not is_multiple_of(price, spec.tick_size):
                errors.append(
                    UserError(
                        "limitPrice",
                        ErrorCode.INVALID_PRECISION,
                        f"limitPrice {price} is not a multiple of the tick size {spec.tick_size}",
                    )
                )
        elif request.limit_price is not None:
            errors.append(
                UserError("limitPrice", ErrorCode.NOT_ALLOWED, "a MARKET order takes no limitPrice")
            )
        client_id = request.client_order_id
        if client_id is not None:
            errors += check_name("clientOrderId", client_id, max_length=MAX_CLIENT_ORDER_ID_LENGTH)
        return errors, spec


def session_end(now: datetime, close_utc_minute: int) -> datetime:
    """The next session close after ``now`` (DAY orders expire then)."""
    today_close = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        minutes=close_utc_minute
    )
    return today_close if today_close > now else today_close + timedelta(days=1)


async def _last_close(session: AsyncSession, code: str) -> Decimal | None:
    """The latest daily close: the price band's centre before a symbol's first tick."""
    bars = (await symbol_repo.latest_daily_bars_by_codes(session, [code], 1)).get(code)
    return bars[-1].close if bars else None


def _replay(existing: models.Order, request: OrderRequest) -> OrderOutcome:
    """Idempotency: the same request again gets the same order; a different one is a conflict."""
    same = (
        existing.symbol_code == request.symbol
        and existing.side == request.side.value
        and existing.type == request.type.value
        and existing.quantity == request.quantity
        and existing.limit_price == request.limit_price
        and existing.time_in_force == request.time_in_force.value
        and existing.strategy_id == request.strategy_id
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
