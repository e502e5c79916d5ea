"""The bus relay: what a process delivered itself goes to the bus in the background,
in order, without holding the producer up until the bus falls far behind."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from graphql_api.realtime.bus_relay import BusRelay

Messages = Sequence[tuple[str, str]]


class Bus:
    """Records each publish; ``gate`` (when cleared) holds every publish until set."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.refuse: set[str] = set()
        self._arrived = asyncio.Event()

    async def publish(self, messages: Messages) -> None:
        await self.gate.wait()
        if any(message in self.refuse for _, message in messages):
            raise ConnectionError("bus refused")
        self.batches.append(list(messages))
        self._arrived.set()

    async def until_published(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.published) < count:
                self._arrived.clear()
                await self._arrived.wait()

    @property
    def published(self) -> list[str]:
        return [message for batch in self.batches for _, message in batch]


def messages(*texts: str) -> list[tuple[str, str]]:
    return [("ticks.A", text) for text in texts]


async def test_messages_reach_the_bus_in_the_order_they_were_sent_in_chunks() -> None:
    bus = Bus()
    relay = BusRelay(bus.publish, chunk=3)
    for n in range(0, 10, 2):
        relay.send(messages(str(n), str(n + 1)))
    # sending never waits for the bus
    assert bus.published == []
    await bus.until_published(10)
    assert bus.published == [str(n) for n in range(10)]
    assert max(len(batch) for batch in bus.batches) == 3
    assert relay.published == 10
    await relay.close(1)


async def test_a_refused_chunk_is_dropped_and_later_ones_still_go_out() -> None:
    bus = Bus()
    bus.refuse = {"bad"}
    relay = BusRelay(bus.publish, chunk=2)
    relay.send(messages("1", "bad"))
    relay.send(messages("2"))
    await bus.until_published(1)
    assert bus.published == ["2"]
    assert relay.failed == 2
    assert relay.published == 1
    await relay.close(1)


async def test_a_publish_that_hangs_counts_as_failed_after_the_timeout() -> None:
    bus = Bus()
    hanging = asyncio.Event()

    async def publish(messages: Messages) -> None:
        if any(message == "hangs" for _, message in messages):
            await hanging.wait()  # a bus that never answers
        await bus.publish(messages)

    relay = BusRelay(publish, chunk=1, timeout=0.05)
    relay.send(messages("hangs", "next"))
    await bus.until_published(1)
    assert bus.published == ["next"]
    assert relay.failed == 1
    await relay.close(1)


async def test_room_waits_while_the_bus_is_far_behind_and_not_otherwise() -> None:
    bus = Bus()
    relay = BusRelay(bus.publish, chunk=2, high_water=4)
    relay.send(messages("1", "2", "3"))
    # below the mark: at once
    await asyncio.wait_for(relay.room(), 1)
    await bus.until_published(3)
    # a bus that stops answering while the mark is passed
    bus.gate.clear()
    relay.send(messages("4", "5", "6", "7"))
    waiting = asyncio.create_task(relay.room())
    await asyncio.sleep(0.05)
    assert not waiting.done(), "room while the bus is held up past the high-water mark"
    bus.gate.set()
    await asyncio.wait_for(waiting, 5)
    await bus.until_published(7)
    await relay.close(1)


async def test_close_publishes_what_waits_then_refuses_more() -> None:
    bus = Bus()
    relay = BusRelay(bus.publish, chunk=1)
    relay.send(messages("1", "2", "3"))
    await relay.close(5)
    assert bus.published == ["1", "2", "3"]
    with pytest.raises(RuntimeError, match="closed"):
        relay.send(messages("4"))


async def test_close_gives_up_on_a_bus_that_does_not_answer() -> None:
    bus = Bus()
    bus.gate.clear()
    relay = BusRelay(bus.publish)
    relay.send(messages("1", "2"))
    await asyncio.wait_for(relay.close(0.1), 5)
    assert bus.published == []
    assert relay.waiting == 0
    # nothing left to wait for
    await asyncio.wait_for(relay.room(), 1)
