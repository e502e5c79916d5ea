"""The ASGI application: Starlette routes around Strawberry's GraphQL app.

This module sits at the top of the import graph (it wires ``schema`` to the
services); nothing imports it but the CLI and tests.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from graphql_api.logging import configure_logging
from graphql_api.runtime import open_services
from graphql_api.services import Services
from graphql_api.settings import Settings
from loaders import create_loaders
from resolvers.context import Context
from schema import schema


class QuantgraphGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with our typed context.

    Over HTTP the context (and its loader cache) lives for one request; over a
    WebSocket it lives for the connection, so those loaders do not cache.
    """

    services: Services | None = None

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        services = self.services
        if services is None:
            raise RuntimeError("services are not started (lifespan did not run)")
        is_websocket = isinstance(request, WebSocket)
        return Context(
            services=services,
            loaders=create_loaders(services.sessions, services.timeseries, cache=not is_websocket),
            user_id=services.demo_user_id,
            request_id=request.headers.get("x-request-id") or uuid.uuid4().hex,
            request=request,
            response=response,
        )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    configure_logging(settings.log_level, json=settings.environment == "production")
    graphql = QuantgraphGraphQL(
        schema,
        keep_alive=True,
        keep_alive_interval=15,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            graphql.services = services
            app.state.services = services
            try:
                yield
            finally:
                graphql.services = None

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def index(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
        ],
        lifespan=lifespan,
    )
