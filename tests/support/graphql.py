"""Small GraphQL clients for tests: HTTP through httpx, WebSocket through websockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

Json = dict[str, Any]


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: Json | None = None,
    headers: dict[str, str] | None = None,
) -> Json:
    """The full response body (data and errors)."""
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body: Json = response.json()
    return body


async def execute(
    client: httpx.AsyncClient,
    query: str,
    variables: Json | None = None,
    headers: dict[str, str] | None = None,
) -> Json:
    """The ``data`` of a response that must not carry errors."""
    body = await post(client, query, variables, headers)
    assert "errors" not in body, body["errors"]
    data: Json = body["data"]
    return data


def error_codes(body: Json) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors", [])]


class WsClient:
    """A graphql-transport-ws (or legacy graphql-ws) client, enough for tests."""

    def __init__(self, connection: ClientConnection, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol
        self._next_id = 0

    @classmethod
    async def open(
        cls, url: str, *, protocol: str = "graphql-transport-ws", payload: Json | None = None
    ) -> WsClient:
        connection = await connect(url, subprotocols=[protocol])  # type: ignore[list-item]
        client = cls(connection, protocol)
        await client.send({"type": "connection_init", "payload": payload or {}})
        ack = await client.receive()
        assert ack["type"] == "connection_ack", ack
        return client

    async def send(self, message: Json) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, timeout: float = 10) -> Json:
        while True:
            raw = await asyncio.wait_for(self.connection.recv(), timeout)
            message: Json = json.loads(raw)
            if message["type"] in {"ka", "ping", "pong"}:
                if message["type"] == "ping":
                    await self.send({"type": "pong"})
                continue
            return message

    async def subscribe(self, query: str, variables: Json | None = None) -> str:
        self._next_id += 1
        op_id = str(self._next_id)
        kind = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        await self.send(
            {"id": op_id, "type": kind, "payload": {"query": query, "variables": variables or {}}}
        )
        return op_id

    async def next_data(self, timeout: float = 10) -> Json:
        message = await self.receive(timeout)
        expected = "next" if self.protocol == "graphql-transport-ws" else "data"
        assert message["type"] == expected, message
        assert "errors" not in message["payload"], message["payload"]
        data: Json = message["payload"]["data"]
        return data

    async def stream(self, timeout: float = 10) -> AsyncIterator[Json]:
        while True:
            yield await self.next_data(timeout)

    async def close(self) -> None:
        await self.connection.close()
