"""The realtime hub on the in-process broadcaster and on real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from broadcaster import Broadcast

from graphql_api.realtime.hub import Hub, SlowConsumerError
from graphql_api.server.runtime import open_broadcast


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def broadcast(request: pytest.FixtureRequest) -> AsyncIterator[Broadcast]:
    url = "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")
    async with open_broadcast(url) as connected:
        yield connected


async def drain(box_get: object, count: int) -> list[str]:
    from graphql_api.realtime.hub import Mailbox

    assert isinstance(box_get, Mailbox)
    return [(await asyncio.wait_for(box_get.get(), 5)).message for _ in range(count)]


async def test_every_subscriber_gets_every_message_in_order(broadcast: Broadcast) -> None:
    hub = Hub(broadcast, capacity=100)
    async with (
        hub.subscribe(["orders.1"], conflate=False) as first,
        hub.subscribe(["orders.1"], conflate=False) as second,
    ):
        # one broadcaster subscription serves both
        assert hub.channel_count == 1
        for n in range(20):
            await hub.publish("orders.1", str(n))
        expected = [str(n) for n in range(20)]
        assert await drain(first, 20) == expected
        assert await drain(second, 20) == expected
    assert hub.channel_count == 0
    await hub.close()


async def test_conflating_subscriber_keeps_latest_per_channel(broadcast: Broadcast) -> None:
    hub = Hub(broadcast, capacity=4)
    async with hub.subscribe(["ticks.A", "ticks.B"], conflate=True) as box:
        # a reader that is not reading while many ticks arrive
        for n in range(50):
            await hub.publish("ticks.A", f"A{n}")
        await hub.publish("ticks.B", "B0")
        await asyncio.sleep(0.3)
        # gets only the latest per symbol, not a backlog
        received = await drain(box, 2)
        assert sorted(received) == ["A49", "B0"]
        assert box.conflated >= 40
    await hub.close()


async def test_lossless_subscriber_that_falls_behind_is_failed_not_silently_dropped(
    broadcast: Broadcast,
) -> None:
    hub = Hub(broadcast, capacity=5)
    async with (
        hub.subscribe(["signals.1"], conflate=False) as stalled,
        hub.subscribe(["signals.1"], conflate=False) as healthy,
    ):
        for n in range(10):
            await hub.publish("signals.1", str(n))
            # the healthy reader keeps up and is never held back by the stalled one
            assert (await asyncio.wait_for(healthy.get(), 5)).message == str(n)
        with pytest.raises(SlowConsumerError):
            await stalled.get()
    await hub.close()


async def test_a_mailbox_moves_between_channels_without_a_gap(broadcast: Broadcast) -> None:
    hub = Hub(broadcast, capacity=100)
    async with hub.subscribe(["ticks.A", "ticks.B"], conflate=True) as box:
        # given a message of B waiting unread
        await hub.publish("ticks.B", "B0")
        await asyncio.sleep(0.2)
        # when the mailbox adds C and drops B
        await hub.listen(box, ["ticks.C", "ticks.A"])
        hub.unlisten(box, ["ticks.B"])
        assert set(box.channels) == {"ticks.A", "ticks.C"}
        assert hub.channel_count == 2
        # then C is live at once, A kept listening, and nothing of B arrives, not even
        # what was already waiting
        await hub.publish("ticks.B", "B1")
        await hub.publish("ticks.C", "C0")
        await hub.publish("ticks.A", "A0")
        assert await drain(box, 2) == ["C0", "A0"]
        await asyncio.sleep(0.2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(box.get(), 0.2)
    assert hub.channel_count == 0
    await hub.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def two_processes(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Hub, Hub]]:
    """Two hubs on one bus, as two server processes have: on Redis each has its own
    connection; in memory they share the broadcaster."""
    if request.param == "memory":
        async with open_broadcast("memory://") as shared:
            here, there = Hub(shared), Hub(shared)
            yield here, there
            await here.close()
            await there.close()
        return
    url = request.getfixturevalue("redis_url")
    async with open_broadcast(url) as first, open_broadcast(url) as second:
        here, there = Hub(first), Hub(second)
        yield here, there
        await here.close()
        await there.close()


async def test_delivered_messages_reach_this_process_at_once_and_the_others_once(
    two_processes: tuple[Hub, Hub],
) -> None:
    here, there = two_processes
    async with (
        here.subscribe(["ticks.A"], conflate=False) as mine,
        there.subscribe(["ticks.A"], conflate=False) as theirs,
    ):
        # when this process delivers what it produced
        here.deliver([("ticks.A", "1"), ("ticks.A", "2")])
        # then its own subscribers have it before anything was awaited
        assert mine.waiting() == 2
        assert await drain(mine, 2) == ["1", "2"]
        # the other process gets it from the bus, unmarked and in order
        assert await drain(theirs, 2) == ["1", "2"]
        # and the bus's echo is not delivered here a second time, while what another
        # publisher sends (unmarked, as an outside feed would) still is
        await there.publish("ticks.A", "3")
        assert await drain(mine, 1) == ["3"]
        assert await drain(theirs, 1) == ["3"]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(mine.get(), 0.2)
    assert here.relay.published == 2


async def test_what_another_process_delivered_is_not_taken_for_an_echo(
    two_processes: tuple[Hub, Hub],
) -> None:
    here, there = two_processes
    async with here.subscribe(["ticks.A"], conflate=False) as mine:
        there.deliver([("ticks.A", '{"last":"1"}')])
        here.deliver([("ticks.A", '{"last":"2"}')])
        received = sorted(await drain(mine, 2))
        assert received == ['{"last":"1"}', '{"last":"2"}']
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(mine.get(), 0.3)
