"""The Subscription root: live ticks, watchlist quotes, signals, order updates and alerts.

Each field declares how the WebSocket transport may share its events
(:mod:`schema.streams`); a field without a declaration is shared only between
the same user's connections, and never conflated.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers import alerts, subscriptions, watchlists
from resolvers.amounts import amounts
from resolvers.context import Info
from resolvers.pagination import parse_id
from schema.alerts import AlertFiring
from schema.market import Tick
from schema.orders import Order
from schema.permissions import MARKET_DATA, SIGNED_IN, TRADING
from schema.strategies import Signal
from schema.streams import StreamSharing
from schema.watchlists import WatchlistQuote


@strawberry.type(description="Live streams over WebSocket (graphql-transport-ws or graphql-ws).")
class Subscription:
    @strawberry.subscription(
        permission_classes=MARKET_DATA,
        # The same for everyone of a role; a slow socket keeps the latest tick per symbol.
        extensions=[StreamSharing(public=True, conflate_by="symbol")],
        description=(
            "Live ticks: first the latest known tick per symbol (snapshot), then every new "
            "one. A slow client skips to the freshest tick per symbol rather than lag."
        ),
    )
    async def ticks(self, info: Info, symbols: list[str]) -> AsyncGenerator[Tick, None]:
        scale = amounts(info)
        async for tick in subscriptions.tick_stream(info, symbols):
            yield Tick.from_domain(tick, scale)

    @strawberry.subscription(
        permission_classes=SIGNED_IN,
        # Your own list; a slow socket keeps the latest event per symbol (a removal
        # replaces that symbol's pending tick, so a late joiner never sees it as listed).
        extensions=[StreamSharing(conflate_by="symbol")],
        description=(
            "Live quotes of one of your watchlists: first every symbol on it, in order, with "
            "its latest tick, then every new tick. Follows changes to the list: an added "
            "symbol comes with its latest tick, a removed one once with `onWatchlist: false`, "
            "a reorder re-sends the symbols that moved; deleting the list completes the "
            "subscription. A list that is not yours is a NOT_FOUND error."
        ),
    )
    async def watchlist_quotes(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[WatchlistQuote, None]:
        scale = amounts(info)
        async for quote in watchlists.quote_stream(info, id):
            yield WatchlistQuote.from_domain(quote, scale)

    @strawberry.subscription(
        permission_classes=TRADING, description="Your strategies' signals, optionally filtered."
    )
    async def signals(
        self,
        info: Info,
        strategy_id: strawberry.ID | None = None,
        symbols: list[str] | None = None,
    ) -> AsyncGenerator[Signal, None]:
        wanted = parse_id(strategy_id, "strategyId") if strategy_id is not None else None
        scale = amounts(info)
        async for row in subscriptions.signal_stream(info, wanted, symbols):
            yield Signal.from_row(row, scale)

    @strawberry.subscription(
        permission_classes=TRADING, description="Your orders' status changes and fills, in order."
    )
    async def order_updates(self, info: Info) -> AsyncGenerator[Order, None]:
        scale = amounts(info)
        async for row in subscriptions.order_stream(info):
            yield Order.from_row(row, scale)

    @strawberry.subscription(
        permission_classes=SIGNED_IN,
        description=(
            "Your alerts' firings as they happen, each once and none lost (of one alert "
            "when `alertId` is given); the past ones are in the `alertFirings` query."
        ),
    )
    async def alerts(
        self, info: Info, alert_id: strawberry.ID | None = None
    ) -> AsyncGenerator[AlertFiring, None]:
        scale = amounts(info)
        async for row in alerts.firing_stream(info, alert_id):
            yield AlertFiring.from_row(row, scale)
