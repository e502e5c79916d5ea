"""The ASGI application: Starlette routes around Strawberry's GraphQL app.

This module sits at the top of the import graph (it wires ``schema`` to the
services); nothing imports it but the CLI and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
)
from strawberry.types.unset import UnsetType

from graphql_api.auth import AuthError
from graphql_api.hardening.query_limits.document_cache import DocumentCache
from graphql_api.hardening.query_limits.guard import QueryLimits
from graphql_api.platform.logging import configure_logging
from graphql_api.platform.settings import Settings
from graphql_api.server import web
from graphql_api.server.context import build_context
from graphql_api.server.hardening import Hardening
from graphql_api.server.http_view import GraphQLOverHTTP
from graphql_api.server.runtime import open_services
from graphql_api.server.websocket import (
    MultiplexLegacyWSHandler,
    MultiplexTransportWSHandler,
    shutdown_all,
)
from graphql_api.services import Services
from resolvers.context import Context
from schema import build_schema


class QuantgraphGraphQL(GraphQLOverHTTP[Context, None]):
    """Strawberry's ASGI app with our typed context and authentication, speaking
    GraphQL over HTTP as the spec has it (:mod:`graphql_api.server.http_view`).

    Over HTTP the context (and its loader cache) lives for one request and the
    token comes from ``Authorization: Bearer``. Over a WebSocket the context
    lives for the connection, its loaders do not cache, and the token comes in
    the ``connection_init`` payload; the socket is closed when that session is
    revoked or its token expires.
    """

    services: Services | None = None
    # What the shared-subscription path checks before it validates (as the schema does).
    query_limits: QueryLimits = QueryLimits()
    # The schema's parsed documents, which the WebSocket protocol parses through too.
    document_cache: DocumentCache | None = None
    # Shared subscriptions, per-socket send queues, limits (graphql_api.server.websocket).
    graphql_transport_ws_handler_class = MultiplexTransportWSHandler
    graphql_ws_handler_class = MultiplexLegacyWSHandler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if scope["type"] == "websocket":
                cleanup = _OPEN_SOCKETS.pop(id(scope), None)
                if cleanup is not None:
                    cleanup()

    async def render_graphql_ide(self, request: Request) -> Response:
        # GraphiQL on our own static files (graphql_api.server.web), not Strawberry's CDN page.
        return web.graphiql_response()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        services = self.services
        if services is None:
            raise RuntimeError("services are not started (lifespan did not run)")
        context = build_context(services, request, response=response)
        if not isinstance(request, WebSocket):
            await _authenticate(context, request.headers.get("authorization"))
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        credential = params.get("authorization") or params.get("Authorization")
        if credential is None and params.get("token"):
            credential = f"Bearer {params['token']}"
        if credential is not None:
            await _authenticate(context, str(credential))
            if context.auth_failure is not None:
                raise context.auth_failure
            if context.principal is None:
                raise ConnectionRejectionError({"reason": context.auth_error})
            _close_when_session_ends(context)
        return None


async def _authenticate(context: Context, header: str | None) -> None:
    if not header:
        return
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        context.auth_error = "Authorization must be 'Bearer <access token>'"
        return
    try:
        context.principal = await context.services.auth.authenticate(token.strip())
    except AuthError as error:
        context.auth_error = str(error)
    except Exception as error:  # the user's role could not be read: see Context.auth_failure
        context.auth_failure = error


def _close_when_session_ends(context: Context) -> None:
    """Close the socket (4401) when its session is revoked (anywhere), its token expires,
    or its user's role changes or the user is removed: the socket's principal was
    read at ``connection_init``, so the client must sign in again to get the new one."""
    principal = context.principal
    websocket = context.request
    assert principal is not None and isinstance(websocket, WebSocket)
    loop = asyncio.get_running_loop()
    unsubscribe: Callable[[], None] = lambda: None  # noqa: E731
    unsubscribe_user: Callable[[], None] = lambda: None  # noqa: E731

    def close(reason: str) -> None:
        unsubscribe()
        unsubscribe_user()
        expiry.cancel()
        if websocket.client_state is WebSocketState.CONNECTED:
            task = loop.create_task(websocket.close(code=4401, reason=reason))
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)

    def on_revoke(session_id: str) -> None:
        if session_id == principal.session_id:
            close("session revoked")

    def on_user_change(user_id: int) -> None:
        if user_id == principal.user_id:
            close("user changed; sign in again")

    delay = max(0.0, (principal.expires_at - datetime.now(UTC)).total_seconds())
    expiry = loop.call_later(delay, close, "token expired")
    unsubscribe = context.services.auth.on_revoke(on_revoke)
    unsubscribe_user = context.services.auth.on_user_change(on_user_change)

    def cleanup() -> None:
        unsubscribe()
        unsubscribe_user()
        expiry.cancel()

    _OPEN_SOCKETS[id(websocket.scope)] = cleanup


# Cleanups for sockets that end normally (so revocation callbacks never leak).
_OPEN_SOCKETS: dict[int, Callable[[], None]] = {}
_CLOSING: set[asyncio.Task[None]] = set()


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    configure_logging(settings.log_level, json=settings.environment == "production")
    hardening = Hardening(settings)
    graphql = QuantgraphGraphQL(
        build_schema(hardening.schema_extensions()),
        keep_alive=True,
        keep_alive_interval=settings.ws_keep_alive_interval_seconds,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout_seconds),
        max_subscriptions_per_connection=settings.ws_max_subscriptions_per_connection,
        subscription_protocols=(
            GRAPHQL_TRANSPORT_WS_PROTOCOL,
            GRAPHQL_WS_PROTOCOL,
            GRAPHQL_SSE_PROTOCOL,
        ),
        allowed_origins=settings.cors_origins,
    )
    graphql.query_limits = hardening.query_limits
    graphql.document_cache = hardening.document_cache

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            open_services(settings, limiter=hardening.limiter) as services,
            hardening.running(services),
        ):
            graphql.services = services
            app.state.services = services
            try:
                yield
            finally:
                await shutdown_all(graphql)  # no-op under GracefulServer (already done)
                graphql.services = None

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            # First: every API request is matched against the routes in this order.
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *web.routes(),
            Route("/healthz", healthz),
            *hardening.routes(),
        ],
        middleware=hardening.middleware(log_level=settings.log_level),
        lifespan=lifespan,
    )
    app.state.hardening = hardening
    return app
