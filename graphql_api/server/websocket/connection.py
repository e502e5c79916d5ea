"""One socket's additions to Strawberry's handler: admission, outbox, tasks, closing.

Both protocol handlers hold one :class:`Connection`; the shared subscriptions of
the socket are its :attr:`Connection.shared` (:mod:`.shared`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import structlog
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.schema.base import BaseSchema

from graphql_api.hardening.query_limits.document_cache import DocumentCache
from graphql_api.hardening.query_limits.guard import QueryLimits
from graphql_api.platform.resilience import ServiceUnavailableError, as_service_unavailable
from graphql_api.realtime.multiplex import SLOW_CONSUMER_CLOSE, SLOW_CONSUMER_REASON, Outbox
from graphql_api.server.websocket.direct import (
    DirectWrite,
    DirectWriteNow,
    direct_writer,
    direct_writer_now,
)
from graphql_api.server.websocket.messages import TRY_AGAIN_LATER
from graphql_api.server.websocket.options import RealtimeOptions
from graphql_api.server.websocket.shared import SharedOperations
from graphql_api.server.websocket.state import realtime_state
from resolvers.context import Context


class ProtocolHandler(Protocol):
    """What a connection uses of its socket's Strawberry protocol handler (both of
    ours: :mod:`.transport_ws`, :mod:`.legacy_ws`)."""

    @property
    def view(self) -> Any: ...

    @property
    def context(self) -> Context: ...

    @property
    def websocket(self) -> AsyncWebSocketAdapter: ...

    @property
    def schema(self) -> BaseSchema: ...

    @property
    def root_value(self) -> Any: ...

    def end_operations(self) -> list[asyncio.Task[Any]]: ...


log = structlog.get_logger(__name__)


class Connection:
    """What both protocol handlers add to Strawberry's, for one socket.

    Parameters:
        handler: the Strawberry protocol handler of the socket.
        legacy: whether it speaks the legacy graphql-ws protocol.
    """

    def __init__(
        self,
        handler: ProtocolHandler,
        *,
        legacy: bool,
    ) -> None:
        self.handler = handler
        self.legacy = legacy
        self.view = handler.view
        self.context: Context = handler.context
        self.state = realtime_state(handler.view)
        configured = getattr(handler.view, "realtime_options", None)
        self.options = (
            configured
            if isinstance(configured, RealtimeOptions)
            else RealtimeOptions.from_settings(self.context.services.settings)
        )
        self._outbox: Outbox | None = None
        self._direct: DirectWrite | Literal[False] | None = None  # None: not looked up yet
        self._direct_now: DirectWriteNow | Literal[False] | None = None
        self.shared = SharedOperations(self)
        self.refused = False
        self.closing = False
        self._admitted: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.state.handlers.add(self)

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(
                self._send_texts,
                capacity=self.options.send_queue_size,
                on_overflow=self._overflowed,
                stats=self.state.registry.stats,
                turns=self.state.registry.turns,
                write_now=self._write_texts_now,
            )
        return self._outbox

    @property
    def writes_directly(self) -> bool:
        """Whether the outbox writes straight to the socket, from its task or on a
        write turn (decided at the first write of each)."""
        return bool(self._direct or self._direct_now)

    async def _send_texts(self, texts: list[str]) -> None:
        """Write a batch from the outbox: straight to the socket when the server
        offers it (:mod:`~graphql_api.server.websocket.direct`), else through ASGI."""
        websocket = getattr(self.handler.websocket, "ws", None)
        if websocket is not None:
            if self._direct is None:
                self._direct = direct_writer(websocket.scope) or False
            if self._direct:
                await self._direct(texts)
                return
            for text in texts:  # Starlette without the extension: the text as it is
                await websocket.send_text(text)
        else:  # another integration: go through its JSON adapter
            for text in texts:
                await self.handler.websocket.send_json(json.loads(text))

    def _write_texts_now(self, texts: list[str]) -> bool:
        """Write a batch from the outbox at once, straight to the socket, if the
        server offers that and the socket can take it; False otherwise (the
        outbox's writer task then sends it)."""
        if self._direct_now is None:
            websocket = getattr(self.handler.websocket, "ws", None)
            found = direct_writer_now(websocket.scope) if websocket is not None else None
            self._direct_now = found or False
        direct = self._direct_now
        return direct(texts) if direct else False

    def discard_queued(self, op_id: str) -> None:
        """Drop what is queued for ``op_id`` and not yet sent (it was stopped)."""
        if self._outbox is not None:
            self._outbox.discard(op_id)

    @property
    def query_limits(self) -> QueryLimits:
        limits = getattr(self.view, "query_limits", None)
        return limits if isinstance(limits, QueryLimits) else QueryLimits()

    @property
    def document_cache(self) -> DocumentCache | None:
        cache = getattr(self.view, "document_cache", None)
        return cache if isinstance(cache, DocumentCache) else None

    # admission

    def admit(self) -> bool:
        if self._admitted is not None:
            return True
        principal = self.context.principal
        if principal is None:
            return True
        limit = self.options.max_connections_per_user
        if limit is not None and self.state.connections[principal.user_id] >= limit:
            log.info("websocket refused: too many connections", user_id=principal.user_id)
            self.refused = True
            return False
        self.state.connections[principal.user_id] += 1
        self._admitted = principal.user_id
        return True

    def release(self) -> None:
        self.state.handlers.discard(self)
        if self._admitted is not None:
            counts = self.state.connections
            counts[self._admitted] -= 1
            if counts[self._admitted] <= 0:
                del counts[self._admitted]
            self._admitted = None
        for task in self._tasks:
            task.cancel()
        if self._outbox is not None:
            self._outbox.close()

    def spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connection_init(self, init: Callable[[], Awaitable[None]]) -> None:
        """Run Strawberry's ``connection_init`` handling; a store that is down while the
        token is checked (the user's role is read from the database) closes the socket
        ``1013`` instead of failing the connection abnormally."""
        try:
            await init()
        except Exception as error:
            unavailable = as_service_unavailable(error)
            if unavailable is None:
                raise
            await self._refuse_unavailable(unavailable)

    async def _refuse_unavailable(self, unavailable: ServiceUnavailableError) -> None:
        log.warning(
            "websocket refused: service unavailable",
            service=unavailable.service,
            reason=unavailable.reason,
        )
        self.closing = True
        reason = f"{unavailable.service} unavailable; retry later"
        if self.legacy:
            payload: dict[str, object] = {
                "message": reason,
                "code": "SERVICE_UNAVAILABLE",
                "service": unavailable.service,
            }
            if unavailable.retry_after:
                payload["retryAfter"] = round(unavailable.retry_after, 3)
            with contextlib.suppress(Exception):
                await self.handler.websocket.send_json(
                    {"type": "connection_error", "payload": payload}
                )
        await self._close(TRY_AGAIN_LATER, reason, None)

    # closing

    def _overflowed(self, op_id: str) -> None:
        """A lossless subscription fell ``send_queue_size`` events behind: close the socket."""
        self.state.registry.stats.slow_consumers += 1
        log.warning("websocket closed: subscriber too slow", operation=op_id)
        self.closing = True
        self.shared.end_all()
        reason = f"{SLOW_CONSUMER_REASON} ({self.options.send_queue_size} events behind)"
        self.spawn(self._close(SLOW_CONSUMER_CLOSE, reason, None))

    async def _close(self, code: int, reason: str, timeout: float | None) -> None:
        # No timeout for a slow consumer: the close frame goes out when the peer
        # reads again (or the connection drops); nothing is queued for it meanwhile.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.handler.websocket.close(code, reason), timeout)

    async def close_gracefully(self, code: int, reason: str, timeout: float | None) -> None:
        if self.closing:
            return
        self.closing = True
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        tasks = self.handler.end_operations()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        if self._outbox is not None:
            await self._outbox.drain(timeout)
            self._outbox.close()
        await self._close(code, reason, timeout)
