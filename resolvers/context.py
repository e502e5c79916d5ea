"""The typed GraphQL context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from graphql_api.auth import Principal
from graphql_api.services import Services
from loaders import Loaders


class NotAuthenticatedError(RuntimeError):
    """A resolver needed a user; the permission classes should have stopped the call."""


@dataclass(slots=True)
class Context:
    """Per request (HTTP) or per connection (WebSocket).

    Holds no database session: every service call and loader batch opens its
    own, so a long-lived subscription never pins a connection.
    """

    services: Services
    loaders: Loaders
    request_id: str
    request: Request | WebSocket
    response: Response | WebSocket | None = None
    principal: Principal | None = None
    # Why a presented token was refused, for a precise UNAUTHENTICATED message.
    auth_error: str | None = None
    # Why a presented token could not be checked at all (the database is away): raised
    # by the permission classes, so the client gets SERVICE_UNAVAILABLE, not a 500.
    auth_failure: Exception | None = None
    # Set by Strawberry from the WebSocket ``connection_init`` payload.
    connection_params: dict[str, Any] | None = field(default=None)

    @property
    def user_id(self) -> int:
        if self.principal is None:
            raise NotAuthenticatedError("this field needs an authenticated user")
        return self.principal.user_id


Info = strawberry.Info[Context, None]
