"""HTTP/1.1 with each connection's writes sent once per loop turn, on a real uvicorn server.

The server runs :class:`CoalescingHttpToolsProtocol` as ``quantgraph serve`` does;
a thin recorder between it and the socket's own transport counts the writes that
reach the socket (the bytes still go through the real transport).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets

from graphql_api.server.http_protocol import (
    FLUSH_AT_BYTES,
    CoalescingHttpToolsProtocol,
    TurnBufferedTransport,
)
from tests.support.servers import free_port
from tests.support.uvicorn_server import serve_config, serving

BIG = bytes(range(256)) * (8 * 1024)  # 2 MiB, well past FLUSH_AT_BYTES


class RecordingTransport(asyncio.Transport):
    """The socket's transport, with the writes that reach it counted."""

    def __init__(self, raw: asyncio.Transport, writes: list[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.writes = writes

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.raw.write(data)

    def writelines(self, list_of_data: Any) -> None:
        pieces = list(list_of_data)
        self.writes.append(b"".join(pieces))
        self.raw.writelines(pieces)

    def __getattribute__(self, name: str) -> Any:
        if name in ("raw", "writes", "write", "writelines", "__class__", "__dict__"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "raw"), name)


class Server:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.writes: list[bytes] = []  # every write that reached a socket, in order
        self.websocket_transports: list[asyncio.BaseTransport] = []


def recording_protocol(server: Server) -> type[CoalescingHttpToolsProtocol]:
    class Recording(CoalescingHttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(RecordingTransport(transport, server.writes))

        def handle_websocket_upgrade(self) -> None:
            super().handle_websocket_upgrade()
            server.websocket_transports.append(self.transport)

    return Recording


def app_for(server: Server) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["type"] == "websocket":
            await receive()  # connect
            await send({"type": "websocket.accept"})
            message = await receive()
            await send({"type": "websocket.send", "text": message.get("text")})
            await send({"type": "websocket.close", "code": 1000})
            return
        path = scope["path"]
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"one", "more_body": True})
            await server.release.wait()
            await send({"type": "http.response.body", "body": b"two", "more_body": False})
            return
        body = BIG if path == "/big" else f"{path}?{scope['query_string'].decode()}".encode()
        headers = [(b"content-length", str(len(body)).encode())]
        if path == "/close":
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, int]]:
    state = Server()
    port = free_port()
    config = serve_config(app_for(state), port, lifespan="off", http=recording_protocol(state))
    async with serving(uvicorn.Server(config)):
        yield state, port


@contextlib.asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "host: test", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One content-length response: (head, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    return head, body


async def test_a_response_head_and_body_reach_the_socket_in_one_write(
    server: tuple[Server, int],
) -> None:
    state, port = server
    async with connection(port) as (reader, writer):
        writer.write(get("/small?x=1"))
        head, body = await read_response(reader)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"/small?x=1"
    assert len(state.writes) == 1, state.writes
    assert state.writes[0] == head + body


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(
    server: tuple[Server, int],
) -> None:
    state, port = server
    async with connection(port) as (reader, writer):
        writer.write(get("/small?n=1") + get("/small?n=2"))
        first = await read_response(reader)
        second = await read_response(reader)
        writer.write(get("/small?n=3"))
        third = await read_response(reader)
    assert [first[1], second[1], third[1]] == [b"/small?n=1", b"/small?n=2", b"/small?n=3"]
    assert b"".join(state.writes) == b"".join(first + second + third)


async def test_a_streamed_response_is_sent_before_the_app_writes_again(
    server: tuple[Server, int],
) -> None:
    state, port = server
    async with connection(port) as (reader, writer):
        writer.write(get("/stream"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"transfer-encoding: chunked" in head.lower()
        # The app now waits: its first chunk must reach the client regardless.
        first = await asyncio.wait_for(reader.readuntil(b"one\r\n"), 5)
        assert not state.release.is_set()
        state.release.set()
        rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
    assert first == b"3\r\none\r\n"
    assert rest == b"3\r\ntwo\r\n0\r\n\r\n"


async def test_a_large_body_arrives_whole(server: tuple[Server, int]) -> None:
    state, port = server
    async with connection(port) as (reader, writer):
        writer.write(get("/big"))
        _, body = await read_response(reader)
    assert body == BIG
    # Past FLUSH_AT_BYTES the bytes went to the socket's transport at once.
    assert len(BIG) > FLUSH_AT_BYTES and len(state.writes) == 1


async def test_a_closing_response_is_sent_before_the_connection_closes(
    server: tuple[Server, int],
) -> None:
    _, port = server
    async with connection(port) as (reader, writer):
        writer.write(get("/close?bye=1"))
        whole = await asyncio.wait_for(reader.read(), 5)  # until the server closes
    assert whole.endswith(b"\r\n\r\n/close?bye=1")
    assert b"connection: close" in whole.lower()


async def test_a_websocket_gets_the_sockets_own_transport(server: tuple[Server, int]) -> None:
    state, port = server
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as socket:
        await socket.send("ping")
        assert await asyncio.wait_for(socket.recv(), 5) == "ping"
    assert len(state.websocket_transports) == 1
    assert not isinstance(state.websocket_transports[0], TurnBufferedTransport)
