"""One Redis pub/sub connection, read a buffer at a time.

Every tick a server process fans out reaches it as one Redis pub/sub message.
redis-py's ``PubSub.get_message`` reads one message per call through its
command layer (a retry wrapper, a timeout scope, telemetry hooks, a dict per
message): about 40 µs of CPU per message even with the hiredis parser, paid
once per tick before any subscriber sees it (``python -m bench.bus_reader``).
A subscribed connection needs only four commands (AUTH, SUBSCRIBE, UNSUBSCRIBE,
PING), so this one speaks them itself and hands whatever has arrived to
hiredis in one go: one ``read`` and one parse loop per network buffer, however
many messages it holds.

The URL is read by redis-py (``redis://``, ``rediss://`` with its ``ssl_*``
options, ``unix://``), and TLS contexts are built by redis-py as for every other
connection, so both clients accept the same URLs. Liveness: a connection that
stays silent for ``ping_interval`` is sent a PING, and one that stays silent
for another interval is dead (:class:`RedisSubscriberError`), as is a closed
one or an error reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Mapping
from typing import Any

import hiredis
from redis.asyncio.connection import (
    RedisSSLContext,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)

_READ_SIZE = 1 << 16
_SSL_DEFAULTS: dict[str, Any] = {"cert_reqs": "required", "check_hostname": True}


class RedisSubscriberError(ConnectionError):
    """The subscriber connection is unusable (closed, silent, or refused a command)."""


def encode_command(*args: str) -> bytes:
    """A command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _tls_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    """redis-py's context for its ``ssl_*`` URL options (verifying by default, as it does)."""
    settings = dict(_SSL_DEFAULTS)
    settings.update({key[4:]: value for key, value in options.items() if key.startswith("ssl_")})
    context: ssl.SSLContext = RedisSSLContext(**settings).get()
    return context


class RedisSubscriber:
    """Parameters:
    url: the Redis URL (as for redis-py).
    connect_timeout: seconds to connect and authenticate.
    ping_interval: seconds of silence before a PING; as many again without a reply
        and the connection is dead.
    """

    def __init__(
        self, url: str, *, connect_timeout: float = 5.0, ping_interval: float = 10.0
    ) -> None:
        self._options: dict[str, Any] = dict(parse_url(url))
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader()

    async def open(self) -> None:
        """Connect, authenticate and check the server answers; raises on failure."""
        async with asyncio.timeout(self._connect_timeout):
            self._reader, self._writer = await self._connect()
            username, password = self._options.get("username"), self._options.get("password")
            if password is not None:
                credentials = (username, password) if username else (password,)
                self._send("AUTH", *credentials)
                await self._expect_reply()
            self._send("PING")
            await self._expect_reply()

    def subscribe(self, channels: Iterable[str]) -> None:
        """Subscribe (the confirmations are read, and skipped, by :meth:`read`)."""
        names = list(channels)
        if names:
            self._send("SUBSCRIBE", *names)

    def unsubscribe(self, channels: Iterable[str]) -> None:
        names = list(channels)
        if names:
            self._send("UNSUBSCRIBE", *names)

    async def read(self) -> list[tuple[str, str]]:
        """The ``(channel, message)`` pairs of the next buffer that arrives (possibly
        none: a buffer may hold only confirmations or a PONG); raises
        :class:`RedisSubscriberError` when the connection is closed or dead."""
        reader = self._reader
        if reader is None:
            raise RedisSubscriberError("not connected")
        try:
            async with asyncio.timeout(self._ping_interval):
                data = await reader.read(_READ_SIZE)
        except TimeoutError:
            self._send("PING")
            try:
                async with asyncio.timeout(self._ping_interval):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                raise RedisSubscriberError("Redis did not answer a PING") from None
        if not data:
            raise RedisSubscriberError("Redis closed the connection")
        self._parser.feed(data)
        published: list[tuple[str, str]] = []
        while (reply := self._parser.gets()) is not False:
            if isinstance(reply, Exception):
                raise RedisSubscriberError(f"Redis refused a command: {reply}")
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                published.append((reply[1].decode(), reply[2].decode()))
        return published

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._parser = hiredis.Reader()
        if writer is not None:
            writer.close()
            # Closing a broken connection can fail too; there is nothing left to do then.
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        options = self._options
        if options.get("connection_class") is UnixDomainSocketConnection:
            return await asyncio.open_unix_connection(options["path"])
        host, port = options.get("host", "localhost"), options.get("port", 6379)
        if options.get("connection_class") is SSLConnection:
            context = _tls_context(options)
            return await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
        return await asyncio.open_connection(host, port)

    def _send(self, *args: str) -> None:
        if self._writer is None or self._writer.is_closing():
            raise RedisSubscriberError("not connected")
        self._writer.write(encode_command(*args))

    async def _expect_reply(self) -> None:
        """Wait for one reply (before subscribing: AUTH, PING); an error reply raises."""
        assert self._reader is not None
        while (reply := self._parser.gets()) is False:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise RedisSubscriberError("Redis closed the connection")
            self._parser.feed(data)
        if isinstance(reply, Exception):
            raise RedisSubscriberError(f"Redis refused a command: {reply}")
