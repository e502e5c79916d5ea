"""Which webhook URLs and addresses are refused, and delivery signatures."""

from __future__ import annotations

import pytest

from graphql_api.webhooks.addresses import (
    AddressNotAllowedError,
    check_url,
    resolve_allowed,
)
from graphql_api.webhooks.signing import new_secret, sign, verify


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "http:///nohost",
        "https://user@example.com/",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://example.com/#frag",
        "http://bücher.example/",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    assert check_url(url) is not None


def test_plain_urls_pass() -> None:
    assert check_url("https://hooks.example.com:8443/quantgraph?x=1") is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "[::1]",
        "[fc00::1]",
        "[fe80::1]",
        "[::ffff:127.0.0.1]",
        "[::]",
    ],
)
async def test_addresses_inside_the_network_are_refused(address: str) -> None:
    with pytest.raises(AddressNotAllowedError):
        await resolve_allowed(f"http://{address}/hook", allow_private=False)
    # unless the operator allows them
    assert await resolve_allowed(f"http://{address}/hook", allow_private=True)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "[2606:4700::1111]"])
async def test_public_addresses_pass(address: str) -> None:
    assert await resolve_allowed(f"https://{address}/hook", allow_private=False)


def test_a_signature_verifies_only_with_its_secret_body_and_time() -> None:
    secret, body = new_secret(), b'{"event":"ALERT_FIRED"}'
    header = sign(secret, 1_800_000_000, body)
    assert header.startswith("t=1800000000,v1=")
    assert verify(secret, header, body, now=1_800_000_100)
    assert not verify(new_secret(), header, body, now=1_800_000_100)
    assert not verify(secret, header, body + b"x", now=1_800_000_100)
    assert not verify(secret, header, body, now=1_800_001_000)
    assert not verify(secret, "garbage", body, now=1_800_000_000)
