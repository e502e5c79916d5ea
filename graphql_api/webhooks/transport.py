"""An HTTP transport that connects only to addresses webhooks may reach.

Checking a URL's addresses and then letting the HTTP client resolve the host
again to connect leaves a gap: a DNS server can answer with a public address
to the check and an internal one to the connection (DNS rebinding). Here the
check *is* the connection's resolution: the network backend resolves the host
itself (:func:`~.addresses.resolve_host`), refuses if any address is not
allowed, and connects to the addresses it checked, in order. TLS still
verifies the certificate against the URL's host name (httpcore passes it as
the server name, not the address connected to).
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore
import httpx

from graphql_api.webhooks.addresses import resolve_host

__all__ = ["guarded_transport"]


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_host(host, port, allow_private=self._allow_private)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a way to pass a network backend; this is the
        # same pool (default limits) with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=httpx.Limits().max_connections,
            max_keepalive_connections=httpx.Limits().max_keepalive_connections,
            keepalive_expiry=httpx.Limits().keepalive_expiry,
            network_backend=_GuardedBackend(allow_private=allow_private),
        )


def guarded_transport(*, allow_private: bool) -> httpx.AsyncBaseTransport:
    """A transport whose connections only reach allowed addresses (all of them when
    ``allow_private``, which still refuses Unix sockets)."""
    return _GuardedTransport(allow_private=allow_private)
