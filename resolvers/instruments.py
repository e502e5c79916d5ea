"""Instrument administration resolvers (ADMIN): the caller becomes the change's actor."""

from __future__ import annotations

from graphql_api.instruments import Actor, SymbolChanges, SymbolDraft, SymbolOutcome
from resolvers.context import Info, NotAuthenticatedError
from resolvers.pagination import Page, Paging, read_page
from storage import models
from storage.repositories import symbols as symbol_repo

AUDIT_CURSOR = "symbolAudit"


def _actor(info: Info) -> Actor:
    principal = info.context.principal
    if principal is None:
        raise NotAuthenticatedError("instrument administration needs a signed-in ADMIN")
    return Actor(principal.user_id, principal.username)


async def create_symbol(info: Info, draft: SymbolDraft) -> SymbolOutcome:
    return await info.context.services.instruments.create(_actor(info), draft)


async def update_symbol(info: Info, code: str, changes: SymbolChanges) -> SymbolOutcome:
    return await info.context.services.instruments.update(_actor(info), code, changes)


async def set_tradable(info: Info, code: str, tradable: bool) -> SymbolOutcome:
    return await info.context.services.instruments.set_tradable(_actor(info), code, tradable)


async def symbol_audit(info: Info, symbol: str | None, paging: Paging) -> Page[models.SymbolAudit]:
    window = paging.window(AUDIT_CURSOR, info.context.services.settings.max_page_size)
    query = info.context.services.instruments.audit_query(symbol)
    return await read_page(info.context.services.sessions, query, symbol_repo.AUDIT_LIST, window)
