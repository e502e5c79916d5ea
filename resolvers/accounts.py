"""The caller's account: balances with reservations, positions and fills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from graphql_api.auth import Role
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.strategies.account_performance import Performance
from graphql_api.strategies.account_performance import performance as performance_of
from graphql_api.trading.equity import EquitySnapshots, SnapshotKind
from graphql_api.trading.order_types import OrderSide
from graphql_api.trading.orders import ResetOutcome
from graphql_api.trading.risk import reserved_cash
from graphql_api.trading.round_trips import RoundTrip, round_trips
from resolvers.context import Info
from resolvers.pagination import Page, Paging, check_time_range, parse_id, read_page
from storage import models
from storage.repositories import accounts as account_repo


@dataclass(frozen=True, slots=True)
class BalanceView:
    currency: str
    cash: Decimal
    reserved: Decimal

    @property
    def buying_power(self) -> Decimal:
        return self.cash - self.reserved


async def balances(info: Info) -> list[BalanceView]:
    policy = info.context.services.orders.risk_policy
    async with info.context.services.sessions() as session:
        rows = await account_repo.balances(session, info.context.user_id)
        open_orders = await account_repo.open_orders_with_currency(session, info.context.user_id)
    reserved: dict[str, Decimal] = {}
    for order, currency in open_orders:
        if order.side == OrderSide.BUY.value and order.reserve_price is not None:
            remaining = order.quantity - order.filled_quantity
            reserved[currency] = reserved.get(currency, Decimal(0)) + reserved_cash(
                remaining, order.reserve_price, policy.commission_rate
            )
    return [
        BalanceView(row.currency, row.amount, reserved.get(row.currency, Decimal(0)))
        for row in rows
    ]


async def positions(info: Info) -> list[models.Position]:
    async with info.context.services.sessions() as session:
        return await account_repo.positions(session, info.context.user_id)


def trade_filter(
    symbol: str | None, side: OrderSide | None, time_from: datetime | None, time_to: datetime | None
) -> account_repo.TradeFilter:
    return account_repo.TradeFilter(
        symbol_code=symbol.upper() if symbol else None,
        side=side.value if side is not None else None,
        time_from=time_from,
        time_to=time_to,
    )


async def trades(
    info: Info, filters: account_repo.TradeFilter, paging: Paging
) -> Page[models.Trade]:
    window = paging.window("trade", info.context.services.settings.max_page_size)
    check_time_range(filters.time_from, filters.time_to)
    query = account_repo.trades_query(info.context.user_id, filters)
    return await read_page(info.context.services.sessions, query, account_repo.TRADE_LIST, window)


async def order_fills(info: Info, order_id: int) -> list[models.Trade]:
    return await info.context.loaders.trades_by_order.load(order_id)


async def performance(
    info: Info, currency: str, start: datetime | None, end: datetime | None
) -> Performance:
    """The caller's equity curve and metrics in ``currency`` over ``[start, end)``."""
    check_time_range(start, end)
    wanted = currency.strip().upper()
    user_id = info.context.user_id
    async with info.context.services.sessions() as session:
        snapshots = await account_repo.equity_snapshots(session, user_id, wanted, start, end)
        fills = await account_repo.fills_until(session, user_id, end)
        resets = await account_repo.reset_marks(session, user_id)
    closed = await _closed_in(info, fills, resets, wanted, start, end)
    return performance_of(wanted, snapshots, closed)


async def closed_positions(
    info: Info, symbol: str | None, start: datetime | None, end: datetime | None
) -> list[RoundTrip]:
    """The caller's round trips closed in ``[start, end)``, newest first."""
    check_time_range(start, end)
    async with info.context.services.sessions() as session:
        fills = await account_repo.fills_until(
            session, info.context.user_id, end, symbol.upper() if symbol else None
        )
        resets = await account_repo.reset_marks(session, info.context.user_id)
    trips = [trip for trip in round_trips(fills, resets) if _within(trip.closed_at, start, end)]
    return trips[::-1]


async def record_equity_snapshot(info: Info) -> list[models.EquitySnapshot]:
    services = info.context.services
    snapshots = EquitySnapshots(services.sessions, services.catalog, services.timeseries)
    return await snapshots.record(SnapshotKind.INTRADAY, datetime.now(UTC), [info.context.user_id])


def _within(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


async def _closed_in(
    info: Info,
    fills: list[models.Trade],
    resets: list[int],
    currency: str,
    start: datetime | None,
    end: datetime | None,
) -> list[RoundTrip]:
    specs = await info.context.services.catalog.get_many(sorted({f.symbol_code for f in fills}))
    in_currency = [
        fill
        for fill in fills
        if fill.symbol_code in specs and specs[fill.symbol_code].currency == currency
    ]
    trips = round_trips(in_currency, resets)
    return [trip for trip in trips if _within(trip.closed_at, start, end)]


async def reset_account(info: Info, user_id: str | None) -> ResetOutcome:
    """Your own account, or (ADMIN) anyone's; a user id that is not yours is
    NOT_FOUND for everyone else, as another user's objects are."""
    principal = info.context.principal
    assert principal is not None, "guarded by the permission classes"
    target = info.context.user_id if user_id is None else parse_id(user_id, "userId")
    if target != info.context.user_id and principal.role is not Role.ADMIN:
        return ResetOutcome([], [UserError("userId", ErrorCode.NOT_FOUND, "no such user")])
    services = info.context.services
    outcome = await services.orders.reset_account(target, services.settings.start_cash)
    if not outcome.errors:
        # the curve shows the fresh start at once, not at the next midnight
        snapshots = EquitySnapshots(services.sessions, services.catalog, services.timeseries)
        await snapshots.record(SnapshotKind.INTRADAY, datetime.now(UTC), [target])
    return outcome
