"""Building the GraphQL context, for HTTP requests, WebSocket connections and
the shared subscriptions that run on a connection's behalf.

One factory so the three agree on what a context holds: the services, fresh
loaders (caching for one HTTP request; never over a WebSocket, whose context
lives as long as the connection and would serve stale rows), an id for the
logs, and who is asking.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from graphql_api.auth import Principal
from graphql_api.hardening.http_guards import new_request_id
from graphql_api.services import Services
from loaders import create_loaders
from resolvers.context import Context

__all__ = ["build_context"]


def build_context(
    services: Services,
    request: Request | WebSocket,
    *,
    response: Response | WebSocket | None = None,
    request_id: str | None = None,
    principal: Principal | None = None,
    auth_error: str | None = None,
) -> Context:
    """``request_id``: the client's ``X-Request-ID``, else a new one, when None.
    ``principal``/``auth_error``: who is asking, when already known (a shared
    subscription inherits them from the connection that starts it)."""
    is_websocket = isinstance(request, WebSocket)
    return Context(
        services=services,
        loaders=create_loaders(services.sessions, services.timeseries, cache=not is_websocket),
        request_id=request_id or request.headers.get("x-request-id") or new_request_id(),
        request=request,
        response=response,
        principal=principal,
        auth_error=auth_error,
    )
