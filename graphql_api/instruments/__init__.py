"""Instrument administration: drafts and their rules, and the service that applies them."""

from graphql_api.instruments.admin import (
    Actor,
    AuditAction,
    InstrumentService,
    SymbolOutcome,
    snapshot,
)
from graphql_api.instruments.drafts import SessionDraft, SymbolChanges, SymbolDraft

__all__ = [
    "Actor",
    "AuditAction",
    "InstrumentService",
    "SessionDraft",
    "SymbolChanges",
    "SymbolDraft",
    "SymbolOutcome",
    "snapshot",
]
