"""Strawberry's WebSocket protocol handlers, with shared subscriptions and limits.

Both protocols (graphql-transport-ws and the legacy graphql-ws) keep Strawberry's
behaviour for everything but the execution of subscription operations, which goes
through :mod:`graphql_api.realtime.multiplex`: identical subscriptions share one execution
and one JSON serialization per event, and every connection writes through its own
bounded :class:`~graphql_api.realtime.multiplex.Outbox`. Queries and mutations sent over a
WebSocket, and documents that do not parse, validate or name a subscription, take
Strawberry's own path unchanged.

Sharing is keyed by (document, variables, operation name, scope). The scope is who
the shared execution runs as, and therefore whose permissions it checks. What
each subscription field allows is declared on the field in the schema
(:mod:`schema.streams`) and read once per schema:

- public fields (``StreamSharing(public=True)``: ``ticks``) are shared by every
  subscriber of the same *role* (``ANONYMOUS`` for no principal); the execution
  runs with the principal of the subscriber that started it. Permission classes
  only look at the role for these fields, so every member of the group gets the
  outcome it would have got on its own (an anonymous group when
  ``ANONYMOUS_MARKET_DATA`` is false gets the UNAUTHENTICATED error once,
  delivered to each member).
- any other field (``orderUpdates``, ``signals``) is user-scoped: the scope holds
  the user id and role, so only the same user's connections share an execution.

Conflating fields (``StreamSharing(conflate_by=...)``: ticks by symbol) are
executed with one extra, aliased selection of the key field, which is popped
before serialization and keys both the per-socket conflation and the late-joiner
replay.

Also here: graphql-transport-ws server pings (Strawberry's ``keep_alive`` only
covers the legacy protocol), a per-user connection limit (close ``4429 too many
connections``), a connection-init timeout for the legacy protocol (close ``4408``,
as graphql-transport-ws does), a retryable refusal of ``connection_init`` while
the token cannot be checked because a store is down (close ``1013``; the legacy
protocol first gets a ``connection_error`` with ``SERVICE_UNAVAILABLE``), and
:func:`shutdown_all`, which sends ``complete`` for every active operation and
closes each socket with ``1001 server shutting down``.

Modules, one job each:

- :mod:`.documents`: which subscription documents are shared, and how (the key);
- :mod:`.messages`: the protocol messages this package writes itself, and close codes;
- :mod:`.options` / :mod:`.state`: settings per view; live connections per view;
- :mod:`.connection`: one socket's additions to Strawberry's handler (admission,
  outbox, background tasks, closing);
- :mod:`.shared`: running a subscription operation on a shared stream;
- :mod:`.keep_alive`: server pings and the legacy init timeout;
- :mod:`.transport_ws` / :mod:`.legacy_ws`: the two protocol handlers.

This package sits at the top of the import graph with ``graphql_api.server.app``.
"""

from __future__ import annotations

from graphql_api.server.websocket.legacy_ws import MultiplexLegacyWSHandler
from graphql_api.server.websocket.messages import (
    GOING_AWAY,
    GOING_AWAY_REASON,
    INIT_TIMEOUT,
    INIT_TIMEOUT_REASON,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_CONNECTIONS_REASON,
    TRY_AGAIN_LATER,
)
from graphql_api.server.websocket.options import RealtimeOptions
from graphql_api.server.websocket.state import RealtimeState, realtime_state, shutdown_all
from graphql_api.server.websocket.transport_ws import MultiplexTransportWSHandler


def install(view: object, options: RealtimeOptions | None = None) -> None:
    """Use these handlers on one view instance (tests; production sets class attributes)."""
    setattr(view, "graphql_transport_ws_handler_class", MultiplexTransportWSHandler)  # noqa: B010
    setattr(view, "graphql_ws_handler_class", MultiplexLegacyWSHandler)  # noqa: B010
    if options is not None:
        setattr(view, "realtime_options", options)  # noqa: B010


__all__ = [
    "GOING_AWAY",
    "GOING_AWAY_REASON",
    "INIT_TIMEOUT",
    "INIT_TIMEOUT_REASON",
    "TOO_MANY_CONNECTIONS",
    "TOO_MANY_CONNECTIONS_REASON",
    "TRY_AGAIN_LATER",
    "MultiplexLegacyWSHandler",
    "MultiplexTransportWSHandler",
    "RealtimeOptions",
    "RealtimeState",
    "install",
    "realtime_state",
    "shutdown_all",
]
