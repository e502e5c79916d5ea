"""Who may call what: Strawberry permission classes, not checks inside resolvers.

A missing or refused token is UNAUTHENTICATED; a valid user whose role does
not allow the field is FORBIDDEN. Anonymous callers may read public market
data unless ``ANONYMOUS_MARKET_DATA=false``.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from resolvers.context import Info


def _unauthenticated_message(info: Info) -> str:
    return info.context.auth_error or "authentication required"


def _raise_if_unchecked(info: Info) -> None:
    """A token was presented but could not be checked (its user's role is read from
    the database): fail the field with that cause, which becomes SERVICE_UNAVAILABLE."""
    if info.context.auth_failure is not None:
        raise info.context.auth_failure


class IsAuthenticated(BasePermission):
    message = "authentication required"
    error_extensions = {"code": "UNAUTHENTICATED"}  # noqa: RUF012 - Strawberry's API

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if info.context.principal is not None:
            return True
        _raise_if_unchecked(info)
        self.message = _unauthenticated_message(info)
        return False


class CanReadMarketData(BasePermission):
    message = "authentication required for market data"
    error_extensions = {"code": "UNAUTHENTICATED"}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if info.context.principal is not None:
            return True
        _raise_if_unchecked(info)
        if info.context.auth_error is not None:
            # A bad token is refused even where anonymous access would be allowed.
            self.message = info.context.auth_error
            return False
        return info.context.services.settings.anonymous_market_data


class CanTrade(BasePermission):
    message = "your role may not trade (TRADER or ADMIN required)"
    error_extensions = {"code": "FORBIDDEN"}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.role.can_trade


class CanFeed(BasePermission):
    message = "your role may not ingest ticks (FEED or ADMIN required)"
    error_extensions = {"code": "FORBIDDEN"}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.role.can_feed


class CanAdminister(BasePermission):
    message = "your role may not administer instruments (ADMIN required)"
    error_extensions = {"code": "FORBIDDEN"}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.role.can_administer


# Classes whose ``has_permission`` reads nothing of ``info`` but ``info.context``: the
# compiled read path (schema.compiled) asks them itself before it answers a root field,
# and leaves any field guarded by another class to the standard path.
CONTEXT_ONLY: frozenset[type[BasePermission]] = frozenset(
    {IsAuthenticated, CanReadMarketData, CanTrade, CanFeed, CanAdminister}
)

Permissions = list[type[BasePermission]]
MARKET_DATA: Permissions = [CanReadMarketData]
TRADING: Permissions = [IsAuthenticated, CanTrade]
FEEDING: Permissions = [IsAuthenticated, CanFeed]
SIGNED_IN: Permissions = [IsAuthenticated]
ADMINISTRATION: Permissions = [IsAuthenticated, CanAdminister]
