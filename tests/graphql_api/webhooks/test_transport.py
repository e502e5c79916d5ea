"""The webhook transport connects only to the addresses it checked itself."""

from __future__ import annotations

import httpx
import pytest

from graphql_api.webhooks.addresses import AddressNotAllowedError, HostNotResolvedError
from graphql_api.webhooks.transport import guarded_transport
from tests.api.test_webhooks import Receiver, receiving


async def test_a_name_resolving_inside_the_network_is_refused_at_connection() -> None:
    async with receiving(Receiver()) as receiver:
        by_name = receiver.url.replace("127.0.0.1", "localhost")
        async with httpx.AsyncClient(transport=guarded_transport(allow_private=False)) as client:
            with pytest.raises(AddressNotAllowedError):
                await client.post(by_name, content=b"{}")
            with pytest.raises(AddressNotAllowedError):
                await client.post(receiver.url, content=b"{}")
            with pytest.raises(HostNotResolvedError):
                await client.post("http://no-such-host.invalid/", content=b"{}")
        # allowed by the operator, the same name connects (to an address it resolved)
        async with httpx.AsyncClient(transport=guarded_transport(allow_private=True)) as client:
            answer = await client.post(by_name, content=b"{}")
    assert answer.status_code == 200
    assert len(receiver.received) == 1
    assert receiver.received[0][0]["host"].startswith("localhost:")
