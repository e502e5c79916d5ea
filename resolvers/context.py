"""The typed GraphQL context."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from graphql_api.services import Services
from loaders import Loaders


@dataclass(slots=True)
class Context:
    """Per request (HTTP) or per connection (WebSocket).

    Holds no database session: every service call and loader batch opens its
    own, so a long-lived subscription never pins a connection.
    """

    services: Services
    loaders: Loaders
    user_id: int
    request_id: str
    request: Request | WebSocket
    response: Response | WebSocket | None = None


Info = strawberry.Info[Context, None]
