"""Instrument administration: list a symbol, change it, halt and resume its trading.

Each change is one transaction holding the symbol, its audit row (who, when,
the symbol before and after), the cash balances a new quote currency needs and
the event announcing it (:data:`~graphql_api.realtime.channels.SYMBOL_CHANGES_CHANNEL`,
staged in the event outbox): every server process reloads the symbol once the
change commits, and a change that rolls back is never announced.

Rules (docs/instruments.md says why):

- a halted symbol (``tradable`` false) refuses new orders with
  ``SYMBOL_NOT_TRADABLE`` (:func:`graphql_api.trading.risk.assess`); its resting
  orders stay as they are — not canceled, and not filled until it resumes;
- a new tick or lot size cancels the resting orders that no longer fit it (a
  limit price off the new tick grid, a remaining quantity off the new lot grid),
  with ``TICK_SIZE_CHANGED`` / ``LOT_SIZE_CHANGED``, in the same transaction, as
  exchanges delete non-conforming orders when they change a tick size;
- code, exchange and quote currency never change once listed: orders, positions
  and balances refer to them;
- a new trading session applies from the next order and the next tick: resting
  orders stay (a DAY order keeps the expiry it was given when placed);
- a change that changes nothing writes nothing (no audit row, no event).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, false
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.instruments.drafts import (
    CODE_PATTERN,
    SymbolChanges,
    SymbolDraft,
    canonical_code,
    check_changes,
    check_draft,
    session_of,
)
from graphql_api.market.symbols import SymbolCatalog, is_multiple_of
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.realtime.channels import ORDERS_NEW_CHANNEL, SYMBOL_CHANGES_CHANNEL
from graphql_api.realtime.events import encode_closed_order
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.trading.accounts import StartCash, start_cash_in
from graphql_api.trading.order_types import OrderStatus
from graphql_api.trading.orders import announce_order
from graphql_api.trading.risk import RejectReason
from storage import models
from storage.engine import SessionFactory
from storage.repositories import orders as order_repo
from storage.repositories import reservations
from storage.repositories import symbols as symbol_repo

__all__ = ["Actor", "AuditAction", "InstrumentService", "SymbolOutcome", "snapshot"]


class AuditAction(enum.Enum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    HALT = "HALT"
    RESUME = "RESUME"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a signed-in user, or an operator at the command line
    (``user_id`` None, ``name`` such as ``cli:alice``)."""

    user_id: int | None
    name: str


@dataclass(frozen=True, slots=True)
class SymbolOutcome:
    """The symbol after the change (None when refused), the problems, and how many
    resting orders the change canceled."""

    symbol: models.Symbol | None
    errors: list[UserError]
    canceled_orders: int = 0


def snapshot(row: models.Symbol) -> dict[str, Any]:
    """The audited state of a symbol, as JSON (decimals as strings, like the API)."""
    return {
        "code": row.code,
        "name": row.name,
        "exchange": row.exchange,
        "currency": row.currency,
        "tickSize": format(row.tick_size, "f"),
        "lotSize": format(row.lot_size, "f"),
        "tradable": row.tradable,
        "session": {**row.trading_session, "offSessionOrders": row.off_session_orders},
    }


def _not_found(code: str) -> SymbolOutcome:
    # A code that could never be listed is not echoed back (it may be megabytes long).
    message = f"no symbol {code!r}" if CODE_PATTERN.fullmatch(code) else "no such symbol"
    return SymbolOutcome(None, [UserError("code", ErrorCode.NOT_FOUND, message)])


def _taken(code: str) -> UserError:
    return UserError("code", ErrorCode.CONFLICT, f"symbol {code!r} is already listed")


class InstrumentService:
    """Parameters:
    sessions: one transaction per change.
    catalog: this process's catalogue, refreshed as soon as a change commits (the
        others follow the announcement on the bus).
    outbox: stages the symbol's announcement, and the order updates of the orders a
        change cancels, in the change's transaction.
    start_cash: what every account gets in a quote currency it has no balance in yet.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        catalog: SymbolCatalog,
        outbox: EventOutbox,
        start_cash: StartCash,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._outbox = outbox
        self._start_cash = start_cash

    async def create(self, actor: Actor, draft: SymbolDraft) -> SymbolOutcome:
        draft, errors = check_draft(draft)
        if errors:
            return SymbolOutcome(None, errors)
        async with self._sessions() as session:
            try:
                row, errors = await self.stage_create(session, actor, draft)
                if row is None:
                    return SymbolOutcome(None, errors)
                await session.commit()
            except IntegrityError:
                # Listed by someone else between our check and our insert.
                await session.rollback()
                return SymbolOutcome(None, [_taken(draft.code)])
        await self._catalog.refresh([row.code])
        return SymbolOutcome(row, [])

    async def stage_create(
        self, session: AsyncSession, actor: Actor, draft: SymbolDraft
    ) -> tuple[models.Symbol | None, list[UserError]]:
        """Add a checked draft's symbol, audit row, announcement and balances to
        ``session``'s transaction without committing (imports commit many at once)."""
        if await session.get(models.Symbol, draft.code) is not None:
            return None, [_taken(draft.code)]
        row = models.Symbol(
            code=draft.code,
            name=draft.name,
            exchange=draft.exchange,
            currency=draft.currency,
            tick_size=draft.tick_size,
            lot_size=draft.lot_size,
            tradable=True,
            trading_session=session_of(draft.session).to_json(),
            off_session_orders=draft.session.off_session_orders.value,
        )
        session.add(row)
        await session.flush()
        # Every account holds every quote currency: a new one is opened for all
        # (and any account that somehow lacks an old one gets it too).
        await symbol_repo.open_cash_balances(
            session,
            draft.currency,
            start_cash_in(self._start_cash, draft.currency),
            datetime.now(UTC),
        )
        self._record(session, actor, AuditAction.CREATE, None, row)
        return row, []

    async def update(self, actor: Actor, code: str, changes: SymbolChanges) -> SymbolOutcome:
        changes, errors = check_changes(changes)
        code = canonical_code(code)
        if errors:
            return SymbolOutcome(None, errors)
        if not CODE_PATTERN.fullmatch(code):
            return _not_found(code)
        async with self._sessions() as session:
            row = await symbol_repo.symbol_for_update(session, code)
            if row is None:
                return _not_found(code)
            before = snapshot(row)
            if changes.name is not None:
                row.name = changes.name
            if changes.tick_size is not None:
                row.tick_size = changes.tick_size
            if changes.lot_size is not None:
                row.lot_size = changes.lot_size
            if changes.session is not None:
                row.trading_session = session_of(changes.session).to_json()
                row.off_session_orders = changes.session.off_session_orders.value
            if snapshot(row) == before:
                return SymbolOutcome(row, [])
            grids_changed = (row.tick_size, row.lot_size) != (
                Decimal(before["tickSize"]),
                Decimal(before["lotSize"]),
            )
            canceled = await self._cancel_misfits(session, row) if grids_changed else 0
            self._record(session, actor, AuditAction.UPDATE, before, row)
            await session.commit()
        await self._catalog.refresh([code])
        return SymbolOutcome(row, [], canceled)

    async def set_tradable(self, actor: Actor, code: str, tradable: bool) -> SymbolOutcome:
        """Halt (``tradable`` false) or resume trading; the same state again is a no-op."""
        code = canonical_code(code)
        if not CODE_PATTERN.fullmatch(code):
            return _not_found(code)
        async with self._sessions() as session:
            row = await symbol_repo.symbol_for_update(session, code)
            if row is None:
                return _not_found(code)
            if row.tradable == tradable:
                return SymbolOutcome(row, [])
            before = snapshot(row)
            row.tradable = tradable
            action = AuditAction.RESUME if tradable else AuditAction.HALT
            self._record(session, actor, action, before, row)
            await session.commit()
        await self._catalog.refresh([code])
        return SymbolOutcome(row, [])

    def audit_query(self, code: str | None) -> Select[models.SymbolAudit]:
        """Audit rows of one symbol (any case) or of all, for a page (see ``keyset``)."""
        wanted = canonical_code(code) if code is not None else None
        if wanted is not None and not CODE_PATTERN.fullmatch(wanted):
            return symbol_repo.audit_query(wanted).where(false())  # never listed, never changed
        return symbol_repo.audit_query(wanted)

    def _record(
        self,
        session: AsyncSession,
        actor: Actor,
        action: AuditAction,
        before: dict[str, Any] | None,
        row: models.Symbol,
    ) -> None:
        symbol_repo.add_audit(
            session,
            code=row.code,
            action=action.value,
            actor_id=actor.user_id,
            actor_name=actor.name,
            before=before,
            after=snapshot(row),
        )
        self._outbox.stage(session, SYMBOL_CHANGES_CHANNEL, row.code)

    async def _cancel_misfits(self, session: AsyncSession, row: models.Symbol) -> int:
        """Cancel the symbol's resting orders that are off its (new) grids; how many."""
        now = datetime.now(UTC)
        canceled = 0
        changes = reservations.ReservationChanges()
        for order in await order_repo.open_orders_for_symbol(session, row.code):
            reason: RejectReason | None = None
            if order.limit_price is not None and not is_multiple_of(
                order.limit_price, row.tick_size
            ):
                reason = RejectReason.TICK_SIZE_CHANGED
            elif not is_multiple_of(order.quantity - order.filled_quantity, row.lot_size):
                reason = RejectReason.LOT_SIZE_CHANGED
            if reason is None:
                continue
            held = reservations.order_hold(order)
            order.status = OrderStatus.CANCELED.value
            order.reject_reason = reason.value
            order.version += 1  # fences a fill the matcher computed from the old row
            order.updated_at = now
            # what it reserved is released in the same commit
            changes.order_changed(order, held)
            announce_order(self._outbox, session, order)
            # and the matcher drops it at once, as for a user's cancel
            self._outbox.stage(session, ORDERS_NEW_CHANNEL, encode_closed_order(order))
            canceled += 1
        await reservations.write(session, changes, now=now, currency_of={row.code: row.currency})
        return canceled
