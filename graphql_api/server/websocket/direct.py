"""Writing queued WebSocket messages straight to the socket, several per write.

A shared subscription's event is serialized once and queued on every
subscriber's outbox. Sent through ASGI, each message would then cost one
``send`` coroutine per socket through Starlette and every middleware, plus a
transport write. Under uvicorn's sans-I/O WebSocket protocol this subclass
offers the connection a *direct writer* instead (in the scope's extensions):
it frames every message of a batch with the protocol's own framer (so
compression, closing state and back-pressure stay the protocol's) and writes
them to the transport in one call, after waiting, as ``send`` does, until the
transport is below its high-water mark.

Only the outbox uses it, and only after the handshake: accepting, closing and
everything Strawberry sends itself still go through ASGI. A server that does
not offer the extension (tests on other servers) gets the ASGI path, message by
message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

DIRECT_WRITE = "quantgraph.websocket.direct_write"
DIRECT_WRITE_NOW = "quantgraph.websocket.direct_write_now"

DirectWrite = Callable[[Sequence[str]], Awaitable[None]]
# Writes a batch at once and says True, or says False (writing nothing) while the
# transport is above its high-water mark; raises when the peer is gone.
DirectWriteNow = Callable[[Sequence[str]], bool]


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, offering :meth:`write_texts` to the app."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)  # unset when the handshake was refused
        if scope is not None:
            scope["extensions"][DIRECT_WRITE] = self.write_texts
            scope["extensions"][DIRECT_WRITE_NOW] = self.write_texts_now

    async def write_texts(self, texts: Sequence[str]) -> None:
        """Frame ``texts`` as text messages and write them in one transport write."""
        await self.writable.wait()  # the transport's flow control, as ``send`` waits
        self._frame_and_write(texts)

    def write_texts_now(self, texts: Sequence[str]) -> bool:
        """:meth:`write_texts` without waiting: False (nothing written) while the
        transport is above its high-water mark, so the caller waits instead."""
        if not self.writable.is_set():
            return False
        self._frame_and_write(texts)
        return True

    def _frame_and_write(self, texts: Sequence[str]) -> None:
        if self.disconnected or self.close_sent or self.transport.is_closing():
            raise ClientDisconnected()
        for text in texts:
            self.conn.send_text(text.encode())
        self.transport.write(b"".join(self.conn.data_to_send()))


def direct_writer_now(scope: Any) -> DirectWriteNow | None:
    """The server's synchronous direct writer for this connection, if any."""
    writer: DirectWriteNow | None = _offered(scope, DIRECT_WRITE_NOW)
    return writer


def direct_writer(scope: Any) -> DirectWrite | None:
    """The direct writer the server offered this connection, if any."""
    writer: DirectWrite | None = _offered(scope, DIRECT_WRITE)
    return writer


def _offered(scope: Any, name: str) -> Any:
    """The callable the server put in the scope's extensions under ``name``, else None."""
    extensions = scope.get("extensions") if isinstance(scope, dict) else None
    found = extensions.get(name) if isinstance(extensions, dict) else None
    return found if callable(found) else None
