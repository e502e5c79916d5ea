"""Where an outbound webhook request may go (SSRF protection).

A webhook URL comes from a user, and the server posts to it from inside the
operator's network: without a check, ``http://169.254.169.254/`` or
``http://localhost:6379/`` would make the server a proxy into that network.
So a URL must be ``http`` or ``https`` with a host and no credentials, and
*every* address its host resolves to must be public: not loopback, private,
link-local, carrier-grade NAT, multicast, reserved or unspecified (IPv4-mapped
IPv6 addresses are judged by their IPv4 address). The check runs when a webhook
is registered, and at every connection a delivery opens
(:mod:`.transport`: the connection goes to the addresses just checked, so a DNS
answer that changes in between cannot slip an internal address in).

``WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true`` lifts the address rule (not the URL
rules) for operators whose receivers live on their own network, and for tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "AddressNotAllowedError",
    "HostNotResolvedError",
    "check_url",
    "resolve_allowed",
    "resolve_host",
]

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not is_private


class AddressNotAllowedError(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


class HostNotResolvedError(Exception):
    """The URL's host did not resolve (now: DNS failures can pass, so worth a retry)."""


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a webhook URL (syntax only), or None if it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"url is longer than {MAX_URL_LENGTH} characters"
    if not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url):
        return "url must be ASCII without spaces (punycode for international names)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        return f"url is not valid: {error}"
    if parts.scheme not in ("http", "https"):
        return "url must start with http:// or https://"
    if not parts.hostname:
        return "url must name a host"
    if parts.username is not None or parts.password is not None:
        return "url must not carry credentials"
    if parts.fragment:
        return "url must not have a #fragment"
    return None


def _allowed(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED)
    )


async def resolve_allowed(url: str, *, allow_private: bool) -> list[IpAddress]:
    """The addresses of ``url``'s host, all of them allowed; raises
    :class:`AddressNotAllowedError` when any is not, :class:`HostNotResolvedError`
    when the host does not resolve."""
    parts: SplitResult = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return await resolve_host(parts.hostname or "", port, allow_private=allow_private)


async def resolve_host(host: str, port: int, *, allow_private: bool) -> list[IpAddress]:
    """:func:`resolve_allowed` for a host name (or address literal) and port."""
    try:
        literal: IpAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
        except TimeoutError:
            raise HostNotResolvedError(
                f"{host} did not resolve within {RESOLVE_TIMEOUT_SECONDS:g} s"
            ) from None
        except OSError as error:
            raise HostNotResolvedError(f"{host} does not resolve: {error}") from None
        addresses = list(
            dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
        )
    if not addresses:
        raise HostNotResolvedError(f"{host} has no address")
    if not allow_private:
        refused = [str(address) for address in addresses if not _allowed(address)]
        if refused:
            raise AddressNotAllowedError(
                f"{host} resolves to an address webhooks may not reach ({', '.join(refused)})"
            )
    return addresses
