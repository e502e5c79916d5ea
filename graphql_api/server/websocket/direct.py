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

DirectWrite = Callable[[Sequence[str]], Awaitable[None]]


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, offering :meth:`write_texts` to the app."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)  # unset when the handshake was refused
        if scope is not None:
            scope["extensions"][DIRECT_WRITE] = self.write_texts

    async def write_texts(self, texts: Sequence[str]) -> None:
        """Frame ``texts`` as text messages and write them in one transport write."""
        await self.writable.wait()  # the transport's flow control, as ``send`` waits
        if self.disconnected or self.close_sent or self.transport.is_closing():
            raise ClientDisconnected()
        for text in texts:
            self.conn.send_text(text.encode())
        self.transport.write(b"".join(self.conn.data_to_send()))


def direct_writer(scope: Any) -> DirectWrite | None:
    """The direct writer the server offered this connection, if any."""
    extensions = scope.get("extensions") if isinstance(scope, dict) else None
    writer = extensions.get(DIRECT_WRITE) if isinstance(extensions, dict) else None
    return writer if callable(writer) else None
