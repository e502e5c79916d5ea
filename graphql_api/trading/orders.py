"""Order entry: validate, make idempotent, check risk, persist, announce.

``place_order`` / ``place_orders`` are the one path every order takes —
GraphQL, strategies with ``autoTrade`` and tests alike — so the rules live here
once. Malformed orders (unknown symbol, off-grid price, …) are refused with
user errors and leave no row; well-formed orders that policy refuses are stored
as REJECTED with a reason code, so the user can see what was refused and why.

Well-formed orders are written by group commit (:mod:`graphql_api.platform.group_commit`):
those that arrive while a batch is being written go together in the next
transaction (:func:`graphql_api.trading.placement.place_batch`), each decided
as if placed alone, in arrival order. A caller is answered only once its
order is committed. If a batch fails for a reason other than the database
being unavailable (a concurrent placement of the same ``clientOrderId`` in
another process, say), its orders are retried one by one, so one order's
problem never fails another's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.market.symbols import SymbolCatalog, SymbolSpec
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.group_commit import GroupCommit
from graphql_api.platform.names import check_name
from graphql_api.platform.resilience import as_service_unavailable
from graphql_api.realtime.channels import ORDERS_NEW_CHANNEL, order_channel
from graphql_api.realtime.events import encode_closed_order, encode_id_event, encode_new_order
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.trading import amendment
from graphql_api.trading.fill_batch import FillEvent
from graphql_api.trading.order_checks import (
    check_expiry,
    check_limit_price,
    check_quantity,
    check_stop,
)
from graphql_api.trading.order_types import (
    LIMIT_TYPES,
    MAX_CLIENT_ORDER_ID_LENGTH,
    OPEN_STATUSES,
    OrderChange,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from graphql_api.trading.placement import OrderOutcome, Placement, place_batch, replay
from graphql_api.trading.risk import Exposure, RiskPolicy, assess
from graphql_api.webhooks.registry import WebhookEvent, enqueue_many
from storage import models
from storage.engine import SessionFactory
from storage.repositories import accounts as account_repo
from storage.repositories import orders as order_repo
from storage.repositories import reservations
from storage.repositories import symbols as symbol_repo
from storage.timeseries import Tick, TimeSeriesStore

__all__ = ["MAX_BATCH_ORDERS", "CancelAllOutcome", "OrderOutcome", "OrderService", "announce_order"]

log = structlog.get_logger(__name__)

MAX_BATCH_ORDERS = 100
"""The most orders one placement transaction takes (and ``placeOrders`` accepts)."""


@dataclass(frozen=True, slots=True)
class CancelAllOutcome:
    """The orders ``cancel_all_orders`` canceled (by id), or why it canceled none."""

    orders: list[models.Order]
    errors: list[UserError]


@dataclass(frozen=True, slots=True)
class ResetOutcome:
    """The orders ``reset_account`` canceled, or why it changed nothing."""

    canceled: list[models.Order]
    errors: list[UserError]


def fill_body(fill: FillEvent) -> str:
    """The JSON an ``ORDER_FILLED`` webhook receives (amounts as strings, times ISO 8601)."""
    return json.dumps(
        {
            "event": WebhookEvent.ORDER_FILLED.value,
            "fill": {
                "orderId": str(fill.order_id),
                "symbol": fill.symbol_code,
                "side": fill.side,
                "quantity": format(fill.quantity, "f"),
                "price": format(fill.price, "f"),
                "commission": format(fill.commission, "f"),
                "time": fill.tick_time.isoformat(),
                "orderStatus": fill.order_status,
                "filledQuantity": format(fill.filled_quantity, "f"),
            },
        },
        separators=(",", ":"),
    )


def order_event(order: models.Order) -> tuple[str, str]:
    """``order``'s change on its owner's channel: the ``(channel, message)`` to stage."""
    return (
        order_channel(order.user_id),
        encode_id_event("order", order.id, status=order.status, version=order.version),
    )


def announce_order(outbox: EventOutbox, session: AsyncSession, order: models.Order) -> None:
    """Stage ``order``'s change on its owner's channel, in ``session``'s transaction."""
    outbox.stage(session, *order_event(order))


class OrderService:
    """Parameters:
    sessions: one transaction per batch of placements, or per cancel.
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
        # One batch in flight per process; across processes the balance row
        # locks serialise placements of the same account.
        self.placements: GroupCommit[Placement, OrderOutcome] = GroupCommit(
            self._write_batch, max_batch=MAX_BATCH_ORDERS
        )

    async def place_order(self, user_id: int, request: OrderRequest) -> OrderOutcome:
        [outcome] = await self.place_orders(user_id, [request])
        return outcome

    async def place_orders(
        self, user_id: int, requests: Sequence[OrderRequest]
    ) -> list[OrderOutcome]:
        """Each request's outcome, in order; invalid ones are refused without a row.

        The valid ones are queued together, so they are decided in this order
        (an order may use what an earlier one left, never what it reserved).
        """
        outcomes: list[OrderOutcome | None] = []
        placements: list[Placement] = []
        for request in requests:
            errors, spec = await self._validate(request)
            if errors:
                outcomes.append(OrderOutcome(None, errors))
                continue
            assert spec is not None
            currency = await self._catalog.currency_of(spec.code)
            placements.append(Placement(user_id, request, spec, currency))
            outcomes.append(None)
        placed = iter(await self.placements.submit(placements) if placements else [])
        return [outcome if outcome is not None else next(placed) for outcome in outcomes]

    async def _write_batch(self, placements: list[Placement]) -> list[OrderOutcome | BaseException]:
        try:
            quotes = await self._timeseries.latest_ticks(sorted({p.spec.code for p in placements}))
            return list(await self._commit(placements, quotes))
        except Exception as error:
            if as_service_unavailable(error) is not None or (
                len(placements) == 1 and not isinstance(error, IntegrityError)
            ):
                return [error] * len(placements)
            log.info("placement batch failed; placing its orders one by one", error=str(error))
        results: list[OrderOutcome | BaseException] = []
        for placement in placements:
            try:
                results.append(await self._commit_alone(placement))
            except Exception as error:
                results.append(error)
        return results

    async def _commit(
        self, placements: Sequence[Placement], quotes: dict[str, Tick]
    ) -> list[OrderOutcome]:
        async with self._sessions() as session:
            outcomes, created = await place_batch(
                session,
                placements,
                quotes=quotes,
                policy=self.risk_policy,
                now=datetime.now(UTC),
            )
            # one statement for the batch's events, each order's change before its
            # announcement to the matcher, in arrival order
            events: list[tuple[str, str]] = []
            for order in created:
                events.append(order_event(order))
                if order.status == OrderStatus.NEW.value:
                    events.append((ORDERS_NEW_CHANNEL, encode_new_order(order)))
            await self._outbox.stage_many(session, events)
            await session.commit()
        return outcomes

    async def _commit_alone(self, placement: Placement) -> OrderOutcome:
        quotes = await self._timeseries.latest_ticks([placement.spec.code])
        try:
            [outcome] = await self._commit([placement], quotes)
        except IntegrityError:
            # A concurrent request with the same clientOrderId in another process
            # won the race. PostgreSQL reports it at the flush that assigns the
            # order's id, SQLite at the commit; either way the stored order is the answer.
            client_order_id = placement.request.client_order_id
            if client_order_id is None:
                raise
            async with self._sessions() as session:
                existing = await order_repo.order_by_client_id(
                    session, placement.user_id, client_order_id
                )
            if existing is None:
                raise
            return replay(existing, placement.request)
        return outcome

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
            await self._cancel(session, [order], datetime.now(UTC))
            await session.commit()
        return OrderOutcome(order, [])

    async def cancel_all_orders(self, user_id: int, symbol: str | None = None) -> CancelAllOutcome:
        """Cancel every open order of ``user_id`` (of one ``symbol`` if given) in one
        transaction; each is announced as a single cancel would be."""
        if symbol is not None and (await self._catalog.get_many([symbol])).get(symbol) is None:
            return CancelAllOutcome(
                [], [UserError("symbol", ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")]
            )
        async with self._sessions() as session:
            orders = await order_repo.open_orders_for_user(
                session, user_id, symbol_code=symbol, for_update=True
            )
            await self._cancel(session, orders, datetime.now(UTC))
            await session.commit()
        return CancelAllOutcome(orders, [])

    async def reset_account(
        self, user_id: int, start_cash: Callable[[str], Decimal]
    ) -> ResetOutcome:
        """Start ``user_id``'s paper account over, in one transaction: every open
        order canceled (announced as a cancel is), every position closed without a
        trade, every cash balance back to ``start_cash(currency)``. Orders, fills and
        snapshots stay as history; the reset is recorded with the last fill before
        it, so round trips open at that moment are known to end there."""
        async with self._sessions() as session:
            if await session.get(models.User, user_id) is None:
                return ResetOutcome([], [UserError("userId", ErrorCode.NOT_FOUND, "no such user")])
            orders = await order_repo.open_orders_for_user(session, user_id, for_update=True)
            now = datetime.now(UTC)
            await self._cancel(session, orders, now)
            for balance in await account_repo.balances(session, user_id, for_update=True):
                balance.amount = start_cash(balance.currency)
                balance.updated_at = now
            for held in await account_repo.all_positions(session, user_id, for_update=True):
                held.quantity = held.cost_basis = held.realized_pnl = Decimal(0)
                held.updated_at = now
            session.add(
                models.AccountReset(
                    user_id=user_id,
                    reset_at=now,
                    last_trade_id=await account_repo.last_trade_id(session, user_id),
                )
            )
            await session.commit()
        return ResetOutcome(orders, [])

    async def amend_order(
        self,
        user_id: int,
        order_id: int,
        *,
        limit_price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> OrderOutcome:
        """Give a resting LIMIT order a new price and/or total quantity (see
        :mod:`graphql_api.trading.amendment`), in one transaction.

        The row is locked and its version bumped, exactly as a cancel does: a fill
        the matcher computed from the order as it was is refused by the version
        fence, and the re-booking event replaces the matcher's copy.
        """
        if limit_price is None and quantity is None:
            return OrderOutcome(
                None,
                [
                    UserError(
                        "limitPrice", ErrorCode.REQUIRED, "give a limitPrice, a quantity or both"
                    )
                ],
            )
        async with self._sessions() as session:
            order = await order_repo.order_for_user(session, user_id, order_id, for_update=True)
            if order is None:
                return OrderOutcome(None, [UserError("id", ErrorCode.NOT_FOUND, "order not found")])
            errors = amendment.not_amendable(order)
            if errors:
                return OrderOutcome(order, errors)
            spec = (await self._catalog.get_many([order.symbol_code])).get(order.symbol_code)
            assert spec is not None, order.symbol_code  # an order's symbol is never removed
            price = order.limit_price if limit_price is None else limit_price
            total = order.quantity if quantity is None else quantity
            if quantity is not None:
                errors += check_quantity(quantity, spec) or amendment.below_filled(order, quantity)
            if limit_price is not None:
                errors += check_limit_price(limit_price, spec)
            if errors:
                return OrderOutcome(order, errors)
            assert price is not None
            if price == order.limit_price and total == order.quantity:
                return OrderOutcome(order, [])  # nothing to change: no new version, no event
            currency = await self._catalog.currency_of(spec.code)
            exposure = amendment.without_own_reservation(
                await self.exposure(session, user_id, spec, currency),
                order,
                self.risk_policy.commission_rate,
            )
            quote = (await self._timeseries.latest_ticks([spec.code])).get(spec.code)
            previous_close = (
                None if quote is not None else await symbol_repo.latest_close(session, spec.code)
            )
            request = OrderRequest(
                spec.code,
                OrderSide(order.side),
                OrderType.LIMIT,
                total,
                price,
                TimeInForce(order.time_in_force),
            )
            verdict = assess(
                request,
                spec,
                quote,
                exposure,
                self.risk_policy,
                previous_close,
                open_quantity=total - order.filled_quantity,
                market_open=spec.session.is_open(datetime.now(UTC)),
            )
            if verdict.reject is not None:
                # Nothing was written: leaving the session rolls back and unlocks.
                return OrderOutcome(
                    order,
                    [amendment.risk_error(verdict.reject, quantity_given=quantity is not None)],
                )
            held, now = reservations.order_hold(order), datetime.now(UTC)
            newest = (
                await order_repo.newest_order_id(session)
                if amendment.loses_priority(order, price, total)
                else None
            )
            amendment.apply(
                order,
                price=price,
                quantity=total,
                reserve_price=verdict.reserve_price,
                newest_order_id=newest,
                now=now,
            )
            changes = reservations.ReservationChanges()
            changes.order_changed(order, held)
            await reservations.write(session, changes, now=now, currency_of={spec.code: currency})
            self.announce(session, order)
            self._outbox.stage(session, ORDERS_NEW_CHANNEL, encode_new_order(order))
            await session.commit()
        return OrderOutcome(order, [])

    async def _cancel(
        self, session: AsyncSession, orders: Sequence[models.Order], now: datetime
    ) -> None:
        """Close locked open orders as CANCELED and stage their announcements.

        What they reserved (cash or quantity) is released in the same commit
        (:mod:`storage.repositories.reservations`). The version bump fences off a
        fill the matcher computed from an order as it was; the ``closed`` event
        takes it out of the matcher's book without waiting for that.
        """
        changes = reservations.ReservationChanges()
        for order in orders:
            held = reservations.order_hold(order)
            order.status = OrderStatus.CANCELED.value
            order.version += 1
            order.updated_at = now
            changes.order_changed(order, held)
            self.announce(session, order)
            self._outbox.stage(session, ORDERS_NEW_CHANNEL, encode_closed_order(order))
        await reservations.write(session, changes, now=now)

    def announce(self, session: AsyncSession, order: models.Order) -> None:
        """Stage ``order``'s change in ``session``: published once (and only if) it commits."""
        announce_order(self._outbox, session, order)

    async def announce_many(self, session: AsyncSession, changes: Sequence[OrderChange]) -> None:
        """Stage several order changes in ``session``, in the given order, in one statement."""
        await self._outbox.stage_many(
            session,
            [
                (
                    order_channel(change.user_id),
                    encode_id_event(
                        "order", change.id, status=change.status, version=change.version
                    ),
                )
                for change in changes
            ],
        )

    async def announce_fills(self, session: AsyncSession, fills: Sequence[FillEvent]) -> None:
        """Stage the ``ORDER_FILLED`` webhook deliveries of ``fills`` in ``session``: one
        read of the owners' webhooks and one insert per batch, committed with the fills.
        Keyed by order version, so a batch decided again never delivers a fill twice."""
        await enqueue_many(
            session,
            self._outbox,
            WebhookEvent.ORDER_FILLED,
            [
                (fill.user_id, f"fill:{fill.order_id}:{fill.order_version}", fill_body(fill))
                for fill in fills
            ],
        )

    async def exposure(
        self, session: AsyncSession, user_id: int, spec: SymbolSpec, currency: str
    ) -> Exposure:
        # Locking the balance row serialises this user's placements across processes;
        # it carries what open BUYs reserve (storage.repositories.reservations).
        balance = await account_repo.balance(session, user_id, currency, for_update=True)
        position = await account_repo.position(session, user_id, spec.code)
        sells = await reservations.reserved_quantity(session, [(user_id, spec.code)])
        return Exposure(
            cash=balance.amount if balance else Decimal(0),
            reserved_cash=(
                reservations.with_commission(
                    balance.reserved_notional, self.risk_policy.commission_rate
                )
                if balance
                else Decimal(0)
            ),
            position=position.quantity if position else Decimal(0),
            reserved_sell=sells[(user_id, spec.code)],
        )

    async def _validate(self, request: OrderRequest) -> tuple[list[UserError], SymbolSpec | None]:
        errors: list[UserError] = []
        spec = (await self._catalog.get_many([request.symbol])).get(request.symbol)
        if spec is None:
            errors.append(
                UserError("symbol", ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {request.symbol!r}")
            )
        errors += check_quantity(request.quantity, spec)
        if request.type in LIMIT_TYPES:
            errors += check_limit_price(request.limit_price, spec)
        elif request.limit_price is not None:
            errors.append(
                UserError(
                    "limitPrice",
                    ErrorCode.NOT_ALLOWED,
                    f"a {request.type.value} order takes no limitPrice",
                )
            )
        errors += check_stop(request.type, request.stop_price, request.time_in_force, spec)
        errors += check_expiry(request.time_in_force, request.expires_at, datetime.now(UTC))
        client_id = request.client_order_id
        if client_id is not None:
            errors += check_name("clientOrderId", client_id, max_length=MAX_CLIENT_ORDER_ID_LENGTH)
        return errors, spec
