"""Order entry: validate, make idempotent, persist, announce.

``place_order`` is the one path every order takes — GraphQL, strategies with
``autoTrade`` and tests alike — so the rules live here once. Malformed orders
(unknown symbol, off-grid price, …) are refused with user errors and leave no
row; orders that are well-formed but refused by policy are stored as REJECTED
with a reason (see the trading issue's risk checks).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from graphql_api.errors import ErrorCode, UserError
from graphql_api.events import encode_id_event, order_channel
from graphql_api.hub import Hub
from graphql_api.symbols import SymbolCatalog, is_multiple_of
from storage import models
from storage.engine import SessionFactory
from storage.repositories import orders as order_repo
from storage.repositories import strategies as strategy_repo


class OrderSide(enum.Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(enum.Enum):
    GTC = "GTC"
    DAY = "DAY"
    IOC = "IOC"


class OrderStatus(enum.Enum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


OPEN_STATUSES = frozenset({OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value})
MAX_CLIENT_ORDER_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    client_order_id: str | None = None
    strategy_id: int | None = None


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    order: models.Order | None
    errors: list[UserError]


class OrderService:
    """Parameters:
    sessions: opens one transaction per call.
    catalog: symbol metadata for validation.
    hub: announces order changes on ``orders.<user id>``.
    """

    def __init__(self, sessions: SessionFactory, catalog: SymbolCatalog, hub: Hub) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._hub = hub

    async def place_order(self, user_id: int, request: OrderRequest) -> OrderOutcome:
        errors = await self._validate(request)
        if errors:
            return OrderOutcome(None, errors)
        async with self._sessions() as session:
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
                status=OrderStatus.NEW.value,
                filled_quantity=Decimal(0),
                average_fill_price=None,
                reject_reason=None,
                created_at=now,
                updated_at=now,
            )
            session.add(order)
            try:
                await session.commit()
            except IntegrityError:
                # A concurrent request with the same clientOrderId won the race.
                await session.rollback()
                assert request.client_order_id is not None
                existing = await order_repo.order_by_client_id(
                    session, user_id, request.client_order_id
                )
                if existing is None:
                    raise
                return _replay(existing, request)
        await self._announce(order)
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
            order.status = OrderStatus.CANCELED.value
            order.updated_at = datetime.now(UTC)
            await session.commit()
        await self._announce(order)
        return OrderOutcome(order, [])

    async def _announce(self, order: models.Order) -> None:
        await self._hub.publish(
            order_channel(order.user_id), encode_id_event("order", order.id, status=order.status)
        )

    async def _validate(self, request: OrderRequest) -> list[UserError]:
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
        if client_id is not None and not 1 <= len(client_id) <= MAX_CLIENT_ORDER_ID_LENGTH:
            errors.append(
                UserError(
                    "clientOrderId",
                    ErrorCode.OUT_OF_RANGE,
                    f"clientOrderId must be 1 to {MAX_CLIENT_ORDER_ID_LENGTH} characters",
                )
            )
        return errors


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
