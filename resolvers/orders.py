"""Order resolvers: reads scoped to the caller, and the order mutations."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from graphql_api.trading.order_types import OrderRequest, OrderSide, OrderStatus, OrderType
from graphql_api.trading.orders import MAX_BATCH_ORDERS, CancelAllOutcome, OrderOutcome
from resolvers.context import Info
from resolvers.errors import bad_user_input
from resolvers.lookahead import selects
from resolvers.pagination import (
    Page,
    Paging,
    check_page_size,
    check_time_range,
    parse_id,
    read_page,
)
from storage import models
from storage.repositories import orders as order_repo


async def order(info: Info, order_id: str) -> models.Order | None:
    found = await info.context.loaders.order_by_id.load(parse_id(order_id))
    # Another user's order does not exist as far as this caller can tell.
    return found if found is not None and found.user_id == info.context.user_id else None


async def orders(info: Info, filters: order_repo.OrderFilter, paging: Paging) -> Page[models.Order]:
    window = paging.window("order", info.context.services.settings.max_page_size)
    check_time_range(filters.created_from, filters.created_to)
    query = order_repo.orders_query(info.context.user_id, filters)
    page = await read_page(info.context.services.sessions, query, order_repo.ORDER_LIST, window)
    for row in page.items:
        info.context.loaders.order_by_id.prime(row.id, row)
    await _prefetch_related(info, page.items)
    return page


def order_filter(
    statuses: list[OrderStatus] | None,
    symbol: str | None,
    side: OrderSide | None,
    order_type: OrderType | None,
    strategy_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> order_repo.OrderFilter:
    """The ``orders`` arguments as a filter (a strategy id that is not ours matches nothing)."""
    return order_repo.OrderFilter(
        statuses=[status.value for status in statuses] if statuses else None,
        symbol_code=symbol.upper() if symbol else None,
        side=side.value if side is not None else None,
        type=order_type.value if order_type is not None else None,
        strategy_id=parse_id(strategy_id) if strategy_id is not None else None,
        created_from=created_from,
        created_to=created_to,
    )


async def _prefetch_related(info: Info, rows: list[models.Order]) -> None:
    """Load the page's symbols and strategies now, batched, so that ``Order.symbol``
    and ``Order.strategy`` answer from the loaders without an await per row."""
    loaders = info.context.loaders
    if not loaders.symbol_by_code.cache:
        return  # nothing would be kept (WebSocket contexts)
    symbol_codes: set[str] = set()
    if selects(info, "edges", "node", "symbol"):
        symbol_codes.update(row.symbol_code for row in rows)
    if selects(info, "edges", "node", "strategy"):
        strategy_ids = {row.strategy_id for row in rows if row.strategy_id is not None}
        strategies = await loaders.strategy_by_id.load_many(sorted(strategy_ids))
        if selects(info, "edges", "node", "strategy", "symbol"):
            symbol_codes.update(s.symbol_code for s in strategies if s is not None)
    if symbol_codes:
        await loaders.symbol_by_code.load_many(sorted(symbol_codes))


async def strategy_orders(info: Info, strategy_id: int, first: int) -> list[models.Order]:
    first = check_page_size(first, info.context.services.settings.max_page_size)
    return await info.context.loaders.orders_by_strategy.load((strategy_id, first))


async def place_order(info: Info, request: OrderRequest) -> OrderOutcome:
    return await info.context.services.orders.place_order(info.context.user_id, request)


async def place_orders(info: Info, requests: list[OrderRequest]) -> list[OrderOutcome]:
    if not 1 <= len(requests) <= MAX_BATCH_ORDERS:
        raise bad_user_input(
            f"inputs must hold between 1 and {MAX_BATCH_ORDERS} orders", argument="inputs"
        )
    return await info.context.services.orders.place_orders(info.context.user_id, requests)


async def cancel_order(info: Info, order_id: str) -> OrderOutcome:
    return await info.context.services.orders.cancel_order(info.context.user_id, parse_id(order_id))


async def cancel_all_orders(info: Info, symbol: str | None) -> CancelAllOutcome:
    return await info.context.services.orders.cancel_all_orders(
        info.context.user_id, symbol.upper() if symbol is not None else None
    )


async def amend_order(
    info: Info, order_id: str, limit_price: Decimal | None, quantity: Decimal | None
) -> OrderOutcome:
    return await info.context.services.orders.amend_order(
        info.context.user_id, parse_id(order_id), limit_price=limit_price, quantity=quantity
    )
