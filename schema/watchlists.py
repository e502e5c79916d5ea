"""Watchlists: the type, the mutations' payloads and arguments, and the live quote type
(the fields themselves are declared by ``schema.query.Query``, ``schema.mutation.Mutation``
and ``schema.subscription.Subscription``)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated

import strawberry

from graphql_api.watchlists.lists import MAX_NAME_LENGTH, WatchlistContents, WatchlistOutcome
from graphql_api.watchlists.live import WatchlistQuote as DomainQuote
from resolvers import watchlists as watchlist_resolvers
from resolvers.amounts import Amounts
from resolvers.context import Info
from schema.common import UserError, user_errors
from schema.market import Symbol, Tick


@strawberry.type(description="A named, ordered list of symbols you watch.")
class Watchlist:
    id: strawberry.ID = strawberry.field(description="Watchlist id.")
    name: str = strawberry.field(description="Its name, unique among your watchlists.")
    created_at: datetime = strawberry.field(description="Creation time.")
    updated_at: datetime = strawberry.field(description="Last change (name or symbols).")
    symbol_codes: strawberry.Private[tuple[str, ...]]

    @classmethod
    def from_domain(cls, contents: WatchlistContents) -> Watchlist:
        return cls(
            id=strawberry.ID(str(contents.id)),
            name=contents.name,
            created_at=contents.created_at,
            updated_at=contents.updated_at,
            symbol_codes=contents.symbols,
        )

    @strawberry.field(
        description="Its symbols in the list's order (with `quote`: every price in one request).",
        graphql_type=list[Symbol],
    )
    def symbols(self, info: Info) -> list[Symbol] | Awaitable[list[Symbol]]:
        rows = watchlist_resolvers.known_symbols(info, self.symbol_codes)
        if rows is not None:
            return [Symbol.from_row(row) for row in rows]
        return self._load_symbols(info)

    async def _load_symbols(self, info: Info) -> list[Symbol]:
        rows = await watchlist_resolvers.symbols(info, self.symbol_codes)
        return [Symbol.from_row(row) for row in rows]


def watchlist_or_none(contents: WatchlistContents | None) -> Watchlist | None:
    return Watchlist.from_domain(contents) if contents is not None else None


@strawberry.type(description="Result of a watchlist change.")
class WatchlistPayload:
    watchlist: Watchlist | None = strawberry.field(
        description="The watchlist after the change; null on errors (then nothing changed)."
    )
    user_errors: list[UserError] = strawberry.field(description="Problems with the input.")

    @classmethod
    def from_outcome(cls, outcome: WatchlistOutcome) -> WatchlistPayload:
        return cls(
            watchlist=watchlist_or_none(outcome.watchlist), user_errors=user_errors(outcome.errors)
        )


@strawberry.type(description="Result of deleteWatchlist.")
class DeleteWatchlistPayload:
    deleted_watchlist_id: strawberry.ID | None = strawberry.field(
        description="Id of the deleted watchlist; null on errors."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it was not deleted.")


@strawberry.type(
    description=(
        "One symbol of a watched list, live: its place on the list and its latest tick. "
        "A symbol that left the list comes once more with `onWatchlist: false`."
    )
)
class WatchlistQuote:
    symbol: str = strawberry.field(description="Symbol code.")
    on_watchlist: bool = strawberry.field(
        description="Whether the symbol is on the list; false once it was removed."
    )
    position: int | None = strawberry.field(
        description="Its 0-based place on the list; null once it was removed."
    )
    quote: Tick | None = strawberry.field(
        description="Its latest tick; null before the first one and once it was removed."
    )

    @classmethod
    def from_domain(cls, quote: DomainQuote, scale: Amounts) -> WatchlistQuote:
        return cls(
            symbol=quote.symbol,
            on_watchlist=quote.position is not None,
            position=quote.position,
            quote=Tick.from_domain(quote.tick, scale) if quote.tick is not None else None,
        )


WatchlistName = Annotated[
    str,
    strawberry.argument(
        description=(
            f"1 to {MAX_NAME_LENGTH} characters, unique among your watchlists (ignoring case)."
        )
    ),
]
SymbolCodes = Annotated[
    list[str], strawberry.argument(description="Symbol codes (any case), e.g. `BTCUSDT`.")
]
InitialSymbols = Annotated[
    list[str] | None,
    strawberry.argument(description="Its first symbols, in order (any case); none when omitted."),
]
Position = Annotated[
    int | None,
    strawberry.argument(description="Where to insert them: 0 is the front; the end when omitted."),
]
