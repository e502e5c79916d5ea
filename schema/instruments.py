"""Instrument administration (ADMIN): the inputs and payloads of createSymbol,
updateSymbol, haltSymbol and resumeSymbol, and the audit entry type (the fields
themselves are declared by ``schema.mutation.Mutation`` and ``schema.query.Query``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import cast

import strawberry
from strawberry.scalars import JSON

from graphql_api.instruments import (
    SessionDraft,
    SymbolChanges,
    SymbolDraft,
    SymbolOutcome,
)
from graphql_api.instruments.drafts import WindowDraft
from schema.common import UserError, user_errors
from schema.enums import OffSessionOrders, SymbolAuditAction, Weekday
from schema.market import Symbol, symbol_or_none
from storage import models


@strawberry.input(description="One weekly trading window, in the session's time zone.")
class TradingWindowInput:
    days: list[Weekday] = strawberry.field(description="The days it opens on.")
    open: str = strawberry.field(description="Opening wall-clock time, `HH:MM` (00:00-23:59).")
    close: str = strawberry.field(
        description=(
            "Closing wall-clock time, `HH:MM`; `24:00` is midnight, and a close at or before "
            "the open is on the next day (`07:00`-`07:00` trades 24 hours)."
        )
    )

    def to_draft(self) -> WindowDraft:
        return WindowDraft(frozenset(self.days), self.open, self.close)


@strawberry.input(
    description=(
        "A symbol's trading session: an IANA time zone and weekly windows, e.g. "
        "`Asia/Shanghai` MON-FRI 09:30-11:30 and 13:00-15:00; `UTC` MON-SUN 00:00-24:00 "
        "for around the clock."
    )
)
class TradingSessionInput:
    timezone: str = strawberry.field(description="IANA time zone, e.g. `America/New_York`.")
    windows: list[TradingWindowInput] = strawberry.field(
        description="At least one weekly window (windows that touch make one open spell)."
    )
    off_session_orders: OffSessionOrders = strawberry.field(
        default=OffSessionOrders.REFUSE,
        description="What an order placed while the session is closed gets.",
    )

    def to_draft(self) -> SessionDraft:
        return SessionDraft(
            self.timezone,
            tuple(window.to_draft() for window in self.windows),
            self.off_session_orders,
        )


@strawberry.input(description="A new symbol. It is tradable from the moment it is listed.")
class CreateSymbolInput:
    code: str = strawberry.field(
        description="Unique code, upper case (given case is ignored): `AAPL`, `600519.SH`."
    )
    name: str = strawberry.field(description="Instrument name, 1 to 128 characters.")
    exchange: str = strawberry.field(description="Listing venue, e.g. `NASDAQ`.")
    currency: str = strawberry.field(
        description=(
            "Quote currency, e.g. `USD`. A currency no symbol had before opens a balance "
            "in it for every account."
        )
    )
    tick_size: Decimal = strawberry.field(description="Price step (positive).")
    lot_size: Decimal = strawberry.field(description="Quantity step (positive).")
    session: TradingSessionInput = strawberry.field(description="Its trading session.")

    def to_draft(self) -> SymbolDraft:
        return SymbolDraft(
            code=self.code,
            name=self.name,
            exchange=self.exchange,
            currency=self.currency,
            tick_size=self.tick_size,
            lot_size=self.lot_size,
            session=self.session.to_draft(),
        )


@strawberry.input(
    description=(
        "Changes to a listed symbol; omitted fields stay. Code, exchange and currency never "
        "change. A new tick or lot size cancels the resting orders that no longer fit it."
    )
)
class UpdateSymbolInput:
    code: str = strawberry.field(description="The symbol to change (any case).")
    name: str | None = strawberry.field(default=None, description="New name.")
    tick_size: Decimal | None = strawberry.field(default=None, description="New price step.")
    lot_size: Decimal | None = strawberry.field(default=None, description="New quantity step.")
    session: TradingSessionInput | None = strawberry.field(
        default=None, description="New trading session."
    )

    def to_changes(self) -> SymbolChanges:
        return SymbolChanges(
            name=self.name,
            tick_size=self.tick_size,
            lot_size=self.lot_size,
            session=self.session.to_draft() if self.session is not None else None,
        )


@strawberry.type(description="Result of createSymbol, haltSymbol or resumeSymbol.")
class SymbolPayload:
    symbol: Symbol | None = strawberry.field(
        description="The symbol after the change; null on errors (then nothing changed)."
    )
    user_errors: list[UserError] = strawberry.field(description="Problems with the input.")

    @classmethod
    def from_outcome(cls, outcome: SymbolOutcome) -> SymbolPayload:
        return cls(symbol=symbol_or_none(outcome.symbol), user_errors=user_errors(outcome.errors))


@strawberry.type(description="Result of updateSymbol.")
class UpdateSymbolPayload:
    symbol: Symbol | None = strawberry.field(
        description="The symbol after the change; null on errors (then nothing changed)."
    )
    canceled_orders: int = strawberry.field(
        description=(
            "Resting orders canceled because they no longer fit a new tick or lot size "
            "(reason TICK_SIZE_CHANGED or LOT_SIZE_CHANGED)."
        )
    )
    user_errors: list[UserError] = strawberry.field(description="Problems with the input.")

    @classmethod
    def from_outcome(cls, outcome: SymbolOutcome) -> UpdateSymbolPayload:
        return cls(
            symbol=symbol_or_none(outcome.symbol),
            canceled_orders=outcome.canceled_orders,
            user_errors=user_errors(outcome.errors),
        )


@strawberry.type(description="One administrative change to a symbol.")
class SymbolAuditEntry:
    id: strawberry.ID = strawberry.field(description="Entry id (later changes have larger ids).")
    symbol: str = strawberry.field(description="Symbol code.")
    action: SymbolAuditAction = strawberry.field(description="What was done.")
    actor_id: strawberry.ID | None = strawberry.field(
        description="Id of the user who did it; null for the command line."
    )
    actor_name: str = strawberry.field(
        description="Their username then, or `cli:<operator>` for the command line."
    )
    at: datetime = strawberry.field(description="When (UTC).")
    before: JSON | None = strawberry.field(
        description="The symbol before (code, name, exchange, currency, tickSize, lotSize, "
        "tradable, session); null for CREATE."
    )
    after: JSON = strawberry.field(description="The symbol after, in the same shape.")

    @classmethod
    def from_row(cls, row: models.SymbolAudit) -> SymbolAuditEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            symbol=row.symbol_code,
            action=SymbolAuditAction(row.action),
            actor_id=strawberry.ID(str(row.actor_id)) if row.actor_id is not None else None,
            actor_name=row.actor_name,
            at=row.at,
            before=cast(JSON, row.before),
            after=cast(JSON, row.after),
        )
