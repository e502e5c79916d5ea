"""Server pings (graphql-transport-ws) and the legacy protocol's init timeout.

Strawberry's ``keep_alive`` only covers the legacy protocol; graphql-transport-ws
pings go through the socket's outbox, in one conflating slot, so a socket that
is behind never holds more than one ping.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from strawberry.http.async_base_view import AsyncWebSocketAdapter

from graphql_api.realtime.multiplex import Outbox
from graphql_api.server.websocket.messages import (
    INIT_TIMEOUT,
    INIT_TIMEOUT_REASON,
    PING_OPERATION,
    PING_TEXT,
)


class _WithOutbox(Protocol):
    @property
    def outbox(self) -> Outbox: ...


class _Admission(Protocol):
    @property
    def refused(self) -> bool: ...


class LegacyHandler(Protocol):
    """What the init timeout reads of a legacy protocol handler."""

    @property
    def connection_acknowledged(self) -> bool: ...

    @property
    def realtime(self) -> _Admission: ...

    @property
    def websocket(self) -> AsyncWebSocketAdapter: ...


async def keep_pinging(connection: _WithOutbox, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        connection.outbox.offer_latest(PING_OPERATION, "ping", (PING_TEXT, "", ""))


async def close_unless_initialised(handler: LegacyHandler, seconds: float) -> None:
    """Close (4408) a legacy socket that has not sent ``connection_init`` in time,
    as graphql-transport-ws does on its own."""
    await asyncio.sleep(seconds)
    if not handler.connection_acknowledged and not handler.realtime.refused:
        with contextlib.suppress(Exception):
            await handler.websocket.close(INIT_TIMEOUT, INIT_TIMEOUT_REASON)
