"""Shared events written straight to the socket: the same bytes as through ASGI,
several queued messages in one write, and flow control still respected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from graphql_api.server.websocket.connection import Connection
from graphql_api.server.websocket.direct import DirectWebSocketProtocol
from tests.conftest import make_settings
from tests.realtime.conftest import RealtimeServer, open_raw, realtime_server, until
from tests.realtime.test_fanout import SYMBOLS, TICKS, Clock, price, tick

SUBSCRIBE = {"id": "t", "type": "subscribe", "payload": {"query": TICKS}}


def connections(server: RealtimeServer) -> list[Connection]:
    return [handler for handler in server.state.handlers if isinstance(handler, Connection)]


def socket_protocols(server: RealtimeServer) -> list[Any]:
    return list(server.server.server_state.connections)


async def received(server: RealtimeServer, protocol: str) -> list[str]:
    """The raw text of every message one subscriber gets for a fixed sequence of ticks."""
    clock = Clock()
    socket = await open_raw(server.url, protocol=protocol)
    try:
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        message = {**SUBSCRIBE, "type": start}
        message["payload"] = {"query": TICKS, "variables": {"symbols": ["BTCUSDT"]}}
        await socket.send(json.dumps(message))
        await until(lambda: server.state.registry.stream_count == 1)
        texts: list[str] = []
        for n in range(1, 6):
            await server.services.ingestor.ingest([tick(clock, "BTCUSDT", price("BTCUSDT", n))])
            while True:
                text = str(await socket.recv())
                if price("BTCUSDT", n) in text:
                    texts.append(text.replace(clock.now.isoformat(), "<time>"))
                    break
        return texts
    finally:
        await socket.close()


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_direct_writes_send_exactly_what_asgi_sends(sqlite_url: str, protocol: str) -> None:
    answers: dict[str, list[str]] = {}
    for ws in ("websockets-sansio", DirectWebSocketProtocol):
        async with realtime_server(make_settings(sqlite_url), ws=ws) as server:
            answers[str(ws)] = await received(server, protocol)
            writes_directly = [c.writes_directly for c in connections(server)]
            assert writes_directly == [ws is DirectWebSocketProtocol] or writes_directly == []
    direct, asgi = answers[str(DirectWebSocketProtocol)], answers["websockets-sansio"]
    assert direct == asgi and len(direct) == 5


async def test_what_queues_while_the_socket_is_paused_goes_out_in_one_write(
    sqlite_url: str,
) -> None:
    clock = Clock()
    async with realtime_server(make_settings(sqlite_url)) as server:
        socket = await open_raw(server.url)
        try:
            message = {**SUBSCRIBE, "payload": {"query": TICKS, "variables": {"symbols": SYMBOLS}}}
            await socket.send(json.dumps(message))
            await until(lambda: server.state.registry.stream_count == 1)
            await asyncio.sleep(0.3)  # attached to the hub
            clock.now = datetime.now(UTC)
            [protocol] = [p for p in socket_protocols(server) if hasattr(p, "write_texts")]
            writes: list[int] = []
            write: Callable[[bytes], None] = protocol.transport.write

            def counted(data: bytes) -> None:
                writes.append(len(data))
                write(data)

            protocol.transport.write = counted
            # the transport is over its high-water mark: the writer must wait
            protocol.writable.clear()
            await server.services.ingestor.ingest(
                [tick(clock, symbol, price(symbol, 1)) for symbol in SYMBOLS]
            )
            stats = server.state.registry.stats
            await until(lambda: stats.deliveries == len(SYMBOLS), what="all four delivered")
            await asyncio.sleep(0.2)
            assert writes == [] and stats.frames_sent == 0  # nothing written while paused
            protocol.writable.set()
            seen = {json.loads(str(await socket.recv()))["payload"]["data"]["ticks"]["symbol"]}
            while len(seen) < len(SYMBOLS):
                seen.add(json.loads(str(await socket.recv()))["payload"]["data"]["ticks"]["symbol"])
            assert seen == set(SYMBOLS)
            # what piled up went out in fewer writes than messages (here: in one)
            assert 1 <= len(writes) < len(SYMBOLS) and stats.writes == len(writes)
        finally:
            await socket.close()
