"""Subscription sources: hub mailboxes turned into streams of rows or ticks.

Events on the bus carry ids (orders, signals) or full ticks; rows are loaded
fresh per event (:mod:`graphql_api.realtime.live_updates`, which also rides out bus and
database outages), so a subscriber always sees the object as it is now.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from graphql_api.platform.resilience import as_service_unavailable
from graphql_api.realtime.channels import tick_channel
from graphql_api.realtime.events import decode_tick
from graphql_api.realtime.live_updates import order_updates, signal_updates
from resolvers.context import Info
from resolvers.errors import bad_user_input
from storage import models
from storage.timeseries import Tick

MAX_SYMBOLS_PER_SUBSCRIPTION = 100


async def tick_stream(info: Info, symbols: list[str]) -> AsyncIterator[Tick]:
    """The latest known tick per symbol first (a snapshot), then every new one."""
    codes = list(dict.fromkeys(code.upper() for code in symbols))
    if not codes or len(codes) > MAX_SYMBOLS_PER_SUBSCRIPTION:
        raise bad_user_input(
            f"symbols must name 1 to {MAX_SYMBOLS_PER_SUBSCRIPTION} symbols", argument="symbols"
        )
    services = info.context.services
    known = await services.catalog.get_many(codes)
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise bad_user_input(f"unknown symbols: {', '.join(unknown)}", argument="symbols")
    # Subscribe before reading the snapshot so no tick falls between the two.
    async with services.hub.subscribe([tick_channel(c) for c in codes], conflate=True) as box:
        try:
            snapshot = await services.timeseries.latest_ticks(codes)
        except Exception as error:
            # The store is down: live ticks still flow through the bus, so keep
            # the subscription and skip the snapshot rather than end it.
            if as_service_unavailable(error) is None:
                raise
            snapshot = {}
        for code in codes:
            if code in snapshot:
                yield snapshot[code]
        while True:
            tick = decode_tick((await box.get()).message)
            seen = snapshot.get(tick.symbol)
            if seen is not None and (tick == seen or tick.time < seen.time):
                continue
            yield tick


async def signal_stream(
    info: Info, strategy_id: int | None, symbols: list[str] | None
) -> AsyncIterator[models.Signal]:
    """The caller's signals, optionally narrowed to one strategy or some symbols."""
    wanted = {code.upper() for code in symbols} if symbols else None
    services = info.context.services
    async for signal in signal_updates(services.sessions, services.hub, info.context.user_id):
        if strategy_id is not None and signal.strategy_id != strategy_id:
            continue
        if wanted is not None and signal.symbol_code not in wanted:
            continue
        yield signal


async def order_stream(info: Info) -> AsyncIterator[models.Order]:
    """The caller's order changes, in the order they were published."""
    services = info.context.services
    async for order in order_updates(services.sessions, services.hub, info.context.user_id):
        yield order
