"""The Mutation root. Each mutation is one transaction; business outcomes are data."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from graphql_api.market.tick_validation import TickDraft
from resolvers import accounts as account_resolvers
from resolvers import (
    alerts,
    auth,
    ingest,
    instruments,
    orders,
    strategies,
    watchlists,
    webhooks,
)
from resolvers.amounts import amounts
from resolvers.context import Info
from schema import accounts as account_types
from schema import backtests, bar_imports
from schema import strategies as strategy_types
from schema.accounts import RecordEquitySnapshotPayload
from schema.alerts import AlertPayload, CreateAlertInput, DeleteAlertPayload
from schema.auth import AuthPayload, AuthTokens, LogoutPayload, User
from schema.backtests import DeleteBacktestPayload, RunBacktestPayload
from schema.bar_imports import ImportBarsPayload
from schema.common import UserError, user_errors
from schema.enums import WebhookEvent
from schema.instruments import (
    CreateSymbolInput,
    SymbolPayload,
    UpdateSymbolInput,
    UpdateSymbolPayload,
)
from schema.orders import (
    AmendOrderPayload,
    CancelAllOrdersPayload,
    CancelOrderPayload,
    Order,
    PlaceOrderInput,
    PlaceOrderPayload,
    ResetAccountPayload,
    order_or_none,
)
from schema.permissions import ADMINISTRATION, FEEDING, SIGNED_IN, TRADING
from schema.strategies import (
    CreateStrategyInput,
    DeleteStrategyPayload,
    StrategyPayload,
    UpdateStrategyInput,
    strategy_or_none,
)
from schema.watchlists import (
    DeleteWatchlistPayload,
    InitialSymbols,
    Position,
    SymbolCodes,
    WatchlistName,
    WatchlistPayload,
)
from schema.webhooks import DeleteWebhookPayload, RegisterWebhookPayload


@strawberry.input(description="One tick from a data feed.")
class TickInput:
    symbol: str = strawberry.field(description="Symbol code.")
    time: datetime = strawberry.field(description="When it happened, with a UTC offset.")
    last: Decimal = strawberry.field(description="Last traded price (positive, on the tick grid).")
    bid: Decimal | None = strawberry.field(default=None, description="Best bid; defaults to last.")
    ask: Decimal | None = strawberry.field(default=None, description="Best ask; defaults to last.")
    volume: Decimal = strawberry.field(default=Decimal(0), description="Quantity traded.")

    def to_draft(self) -> TickDraft:
        return TickDraft(
            symbol=self.symbol.upper(),
            time=self.time,
            last=self.last,
            bid=self.bid,
            ask=self.ask,
            volume=self.volume,
        )


BatchId = Annotated[
    str | None,
    strawberry.argument(
        description=(
            "Idempotency key of this batch (1 to 64 characters, per feed user): a retry with "
            "the same key and ticks is answered as before and stores nothing twice."
        )
    ),
]


@strawberry.type(description="Result of ingestTicks: all ticks are stored, or none.")
class IngestTicksPayload:
    accepted: int = strawberry.field(description="How many ticks were stored.")
    user_errors: list[UserError] = strawberry.field(description="Problems; nothing stored if any.")


SymbolCode = Annotated[str, strawberry.argument(description="Symbol code (any case).")]


@strawberry.type(
    description=(
        "Changes: accounts, orders, strategies, watchlists, alerts, symbols and feed ingestion."
    )
)
class Mutation:
    @strawberry.mutation(description="Create a TRADER account and sign in.")
    async def register(self, info: Info, username: str, password: str) -> AuthPayload:
        user, pair, errors = await auth.register(info, username, password)
        return AuthPayload(
            tokens=AuthTokens.from_pair(pair) if pair else None,
            user=User.from_row(user) if user else None,
            user_errors=user_errors(errors),
        )

    @strawberry.mutation(description="Sign in: returns an access and a refresh token.")
    async def login(self, info: Info, username: str, password: str) -> AuthPayload:
        pair, errors = await auth.login(info, username, password)
        return AuthPayload(
            tokens=AuthTokens.from_pair(pair) if pair else None,
            user=None,
            user_errors=user_errors(errors),
        )

    @strawberry.mutation(description="Exchange a refresh token for new tokens (it rotates).")
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthPayload:
        pair, errors = await auth.refresh(info, refresh_token)
        return AuthPayload(
            tokens=AuthTokens.from_pair(pair) if pair else None,
            user=None,
            user_errors=user_errors(errors),
        )

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description="Revoke this session: its access and refresh tokens stop working at once.",
    )
    async def logout(self, info: Info) -> LogoutPayload:
        await auth.logout(info)
        return LogoutPayload(ok=True)

    @strawberry.mutation(permission_classes=TRADING, description="Place a paper order.")
    async def place_order(self, info: Info, input: PlaceOrderInput) -> PlaceOrderPayload:
        outcome = await orders.place_order(info, input.to_request())
        return PlaceOrderPayload(
            order=order_or_none(outcome.order, amounts(info)),
            user_errors=user_errors(outcome.errors),
        )

    @strawberry.mutation(
        permission_classes=TRADING,
        description=(
            "Place up to 100 paper orders in one request. Each input gets its own payload, in "
            "order, decided as if the orders were placed one after the other: an order can use "
            "what an earlier one left, never what it reserved, and a bad input fails alone. "
            "They are written together (with other orders arriving at the same moment)."
        ),
    )
    async def place_orders(
        self, info: Info, inputs: list[PlaceOrderInput]
    ) -> list[PlaceOrderPayload]:
        outcomes = await orders.place_orders(info, [item.to_request() for item in inputs])
        return [
            PlaceOrderPayload(
                order=order_or_none(outcome.order, amounts(info)),
                user_errors=user_errors(outcome.errors),
            )
            for outcome in outcomes
        ]

    @strawberry.mutation(
        permission_classes=TRADING, description="Cancel one of your NEW or PARTIALLY_FILLED orders."
    )
    async def cancel_order(self, info: Info, id: strawberry.ID) -> CancelOrderPayload:
        outcome = await orders.cancel_order(info, id)
        return CancelOrderPayload(
            order=order_or_none(outcome.order, amounts(info)),
            user_errors=user_errors(outcome.errors),
        )

    @strawberry.mutation(
        permission_classes=TRADING,
        description=(
            "Change the price and/or total quantity of one of your resting LIMIT orders (NEW "
            "or PARTIALLY_FILLED; GTC or DAY), held to the placement's checks and risk rules. "
            "A smaller quantity keeps the order's time priority; a new price or a larger "
            "quantity sends it to the back of its price level, as exchanges do."
        ),
    )
    async def amend_order(
        self,
        info: Info,
        id: strawberry.ID,
        limit_price: Annotated[
            Decimal | None, strawberry.argument(description="New limit price, on the tick grid.")
        ] = None,
        quantity: Annotated[
            Decimal | None,
            strawberry.argument(
                description=(
                    "New total quantity (filled part included): a multiple of the lot size, "
                    "above what is already filled."
                )
            ),
        ] = None,
    ) -> AmendOrderPayload:
        outcome = await orders.amend_order(info, id, limit_price, quantity)
        return AmendOrderPayload(
            order=order_or_none(outcome.order, amounts(info)),
            user_errors=user_errors(outcome.errors),
        )

    @strawberry.mutation(
        permission_classes=TRADING,
        description=(
            "Cancel all your NEW and PARTIALLY_FILLED orders, or those of one symbol, in one "
            "transaction: each releases its reservation and is announced on orderUpdates."
        ),
    )
    async def cancel_all_orders(
        self,
        info: Info,
        symbol: Annotated[
            str | None, strawberry.argument(description="Only this symbol's orders.")
        ] = None,
    ) -> CancelAllOrdersPayload:
        outcome = await orders.cancel_all_orders(info, symbol)
        scale = amounts(info)
        return CancelAllOrdersPayload(
            orders=[Order.from_row(row, scale) for row in outcome.orders],
            count=len(outcome.orders),
            user_errors=user_errors(outcome.errors),
        )

    @strawberry.mutation(
        permission_classes=TRADING,
        description=(
            "Start a paper account over, in one transaction: open orders canceled, positions "
            "closed without a trade, cash back to the starting amounts. Orders, fills and "
            "performance history are kept. Your own account, or any user's for an ADMIN."
        ),
    )
    async def reset_account(
        self,
        info: Info,
        user_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Whose account (ADMIN only); yours if omitted."),
        ] = None,
    ) -> ResetAccountPayload:
        outcome = await account_resolvers.reset_account(info, user_id)
        scale = amounts(info)
        return ResetAccountPayload(
            canceled_orders=[Order.from_row(row, scale) for row in outcome.canceled],
            user_errors=user_errors(outcome.errors),
        )

    @strawberry.mutation(
        permission_classes=TRADING, description="Create a strategy (it starts STOPPED)."
    )
    async def create_strategy(self, info: Info, input: CreateStrategyInput) -> StrategyPayload:
        outcome = await strategies.create_strategy(info, input.to_draft())
        return StrategyPayload(
            strategy=strategy_or_none(outcome.strategy), user_errors=user_errors(outcome.errors)
        )

    @strawberry.mutation(
        permission_classes=TRADING,
        description="Change a strategy's name, kind, symbol or parameters.",
    )
    async def update_strategy(self, info: Info, input: UpdateStrategyInput) -> StrategyPayload:
        outcome = await strategies.update_strategy(info, input.id, input.to_draft())
        return StrategyPayload(
            strategy=strategy_or_none(outcome.strategy), user_errors=user_errors(outcome.errors)
        )

    @strawberry.mutation(
        permission_classes=TRADING,
        description="Delete a stopped strategy; its orders stay, unattributed.",
    )
    async def delete_strategy(self, info: Info, id: strawberry.ID) -> DeleteStrategyPayload:
        outcome = await strategies.delete_strategy(info, id)
        deleted = (
            strawberry.ID(str(outcome.strategy.id))
            if outcome.strategy is not None and not outcome.errors
            else None
        )
        return DeleteStrategyPayload(
            deleted_strategy_id=deleted, user_errors=user_errors(outcome.errors)
        )

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description="Create a watchlist, empty or with symbols (each once, in the order given).",
    )
    async def create_watchlist(
        self, info: Info, name: WatchlistName, symbols: InitialSymbols = None
    ) -> WatchlistPayload:
        outcome = await watchlists.create_watchlist(info, name, symbols or [])
        return WatchlistPayload.from_outcome(outcome)

    @strawberry.mutation(permission_classes=SIGNED_IN, description="Rename one of your watchlists.")
    async def rename_watchlist(
        self, info: Info, id: strawberry.ID, name: WatchlistName
    ) -> WatchlistPayload:
        return WatchlistPayload.from_outcome(await watchlists.rename_watchlist(info, id, name))

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description=(
            "Add symbols to a watchlist at `position`; ones already on it stay where they are."
        ),
    )
    async def add_to_watchlist(
        self, info: Info, id: strawberry.ID, symbols: SymbolCodes, position: Position = None
    ) -> WatchlistPayload:
        outcome = await watchlists.add_to_watchlist(info, id, symbols, position)
        return WatchlistPayload.from_outcome(outcome)

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description="Remove symbols from a watchlist; ones not on it are ignored.",
    )
    async def remove_from_watchlist(
        self, info: Info, id: strawberry.ID, symbols: SymbolCodes
    ) -> WatchlistPayload:
        outcome = await watchlists.remove_from_watchlist(info, id, symbols)
        return WatchlistPayload.from_outcome(outcome)

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description=(
            "Put a watchlist in a new order: `symbols` must be exactly its symbols, each once."
        ),
    )
    async def reorder_watchlist(
        self, info: Info, id: strawberry.ID, symbols: SymbolCodes
    ) -> WatchlistPayload:
        outcome = await watchlists.reorder_watchlist(info, id, symbols)
        return WatchlistPayload.from_outcome(outcome)

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description="Delete one of your watchlists (its live quote subscriptions complete).",
    )
    async def delete_watchlist(self, info: Info, id: strawberry.ID) -> DeleteWatchlistPayload:
        outcome = await watchlists.delete_watchlist(info, id)
        deleted = (
            strawberry.ID(str(outcome.watchlist.id))
            if outcome.watchlist is not None and not outcome.errors
            else None
        )
        return DeleteWatchlistPayload(
            deleted_watchlist_id=deleted, user_errors=user_errors(outcome.errors)
        )

    @strawberry.mutation(
        permission_classes=ADMINISTRATION,
        description=(
            "List a new symbol (ADMIN). Audited; every server process sees it at once, and "
            "every account gets a balance in a new quote currency."
        ),
    )
    async def create_symbol(self, info: Info, input: CreateSymbolInput) -> SymbolPayload:
        return SymbolPayload.from_outcome(await instruments.create_symbol(info, input.to_draft()))

    @strawberry.mutation(
        permission_classes=ADMINISTRATION,
        description=(
            "Change a symbol's name, tick size, lot size or session (ADMIN). Resting orders "
            "that no longer fit a new tick or lot size are canceled in the same transaction."
        ),
    )
    async def update_symbol(self, info: Info, input: UpdateSymbolInput) -> UpdateSymbolPayload:
        outcome = await instruments.update_symbol(info, input.code, input.to_changes())
        return UpdateSymbolPayload.from_outcome(outcome)

    @strawberry.mutation(
        permission_classes=ADMINISTRATION,
        description=(
            "Halt trading in a symbol (ADMIN): new orders are REJECTED with "
            "SYMBOL_NOT_TRADABLE; resting orders stay, unfilled, until it resumes."
        ),
    )
    async def halt_symbol(self, info: Info, code: SymbolCode) -> SymbolPayload:
        return SymbolPayload.from_outcome(await instruments.set_tradable(info, code, False))

    @strawberry.mutation(
        permission_classes=ADMINISTRATION,
        description="Resume trading in a halted symbol (ADMIN).",
    )
    async def resume_symbol(self, info: Info, code: SymbolCode) -> SymbolPayload:
        return SymbolPayload.from_outcome(await instruments.set_tradable(info, code, True))

    run_backtest: RunBacktestPayload = strawberry.mutation(
        resolver=backtests.run_backtest,
        permission_classes=TRADING,
        description=(
            "Backtest a strategy kind over stored bars (signal on a bar's close, fill at the "
            "next bar's open); runs off the event loop."
        ),
    )
    record_equity_snapshot: RecordEquitySnapshotPayload = strawberry.mutation(
        resolver=account_types.record_equity_snapshot,
        permission_classes=TRADING,
        description=(
            "Record your account's equity now (an INTRADAY point of "
            "`me.account.performance`); end-of-day points are taken for you."
        ),
    )
    delete_backtest: DeleteBacktestPayload = strawberry.mutation(
        resolver=backtests.delete_backtest,
        permission_classes=TRADING,
        description="Delete one of your saved backtest runs.",
    )
    start_strategy: StrategyPayload = strawberry.mutation(
        resolver=strategy_types.start_strategy,
        permission_classes=TRADING,
        description="Run a STOPPED (or ERROR) strategy on live bars.",
    )
    stop_strategy: StrategyPayload = strawberry.mutation(
        resolver=strategy_types.stop_strategy,
        permission_classes=TRADING,
        description="Stop a RUNNING strategy.",
    )
    import_bars: ImportBarsPayload = strawberry.mutation(
        resolver=bar_imports.import_bars,
        permission_classes=FEEDING,
        description=(
            "Import daily bars (shared market data, role FEED) from CSV text "
            "(date,open,high,low,close,volume with a header); all or nothing."
        ),
    )

    @strawberry.mutation(
        permission_classes=FEEDING,
        description="Store and publish ticks from a data feed (all or nothing).",
    )
    async def ingest_ticks(
        self,
        info: Info,
        ticks: list[TickInput],
        batch_id: BatchId = None,
    ) -> IngestTicksPayload:
        outcome = await ingest.ingest_ticks(
            info, [tick.to_draft() for tick in ticks], batch_id=batch_id
        )
        return IngestTicksPayload(
            accepted=outcome.accepted, user_errors=user_errors(outcome.errors)
        )

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description="Create an alert; it is ACTIVE at once (evaluated on the next ticks).",
    )
    async def create_alert(self, info: Info, input: CreateAlertInput) -> AlertPayload:
        outcome = await alerts.create_alert(info, input.to_draft())
        return AlertPayload.from_outcome(outcome, amounts(info))

    @strawberry.mutation(
        permission_classes=SIGNED_IN, description="Stop evaluating an ACTIVE alert (kept PAUSED)."
    )
    async def pause_alert(self, info: Info, id: strawberry.ID) -> AlertPayload:
        return AlertPayload.from_outcome(await alerts.pause_alert(info, id), amounts(info))

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description="Evaluate a PAUSED alert again (EXPIRED if its expiresAt has passed).",
    )
    async def resume_alert(self, info: Info, id: strawberry.ID) -> AlertPayload:
        return AlertPayload.from_outcome(await alerts.resume_alert(info, id), amounts(info))

    @strawberry.mutation(
        permission_classes=SIGNED_IN, description="Delete one of your alerts and its firings."
    )
    async def delete_alert(self, info: Info, id: strawberry.ID) -> DeleteAlertPayload:
        return DeleteAlertPayload.from_outcome(await alerts.delete_alert(info, id))

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description=(
            "Register an http(s) URL to receive `events` as signed POSTs; the payload shows "
            "its signing secret, once. A URL whose host is or resolves to a loopback, "
            "private or link-local address is NOT_ALLOWED (unless the operator allows it)."
        ),
    )
    async def register_webhook(
        self, info: Info, url: str, events: list[WebhookEvent]
    ) -> RegisterWebhookPayload:
        return RegisterWebhookPayload.from_outcome(
            await webhooks.register_webhook(info, url, events)
        )

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description="Delete one of your webhooks with its delivery log (pending ones are dropped).",
    )
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> DeleteWebhookPayload:
        return DeleteWebhookPayload.from_outcome(await webhooks.delete_webhook(info, id))
