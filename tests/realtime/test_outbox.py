"""The per-connection outbox and the shared-stream registry, without a server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable

from graphql_api.realtime.multiplex import (
    Failure,
    Item,
    MultiplexRegistry,
    Next,
    Outbox,
    StreamKey,
)


class Socket:
    """A fake socket whose writes block until ``open`` is set."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.writes: list[int] = []
        self.open = asyncio.Event()
        self.open.set()

    async def send(self, texts: list[str]) -> None:
        await self.open.wait()
        self.sent.extend(texts)
        self.writes.append(len(texts))


def frame(payload: str) -> tuple[str, str, str]:
    return ('{"id":"1","type":"next","payload":', payload, "}")


async def test_conflating_frames_keep_the_latest_per_key_in_place() -> None:
    socket = Socket()
    socket.open.clear()
    outbox = Outbox(socket.send, capacity=10, on_overflow=lambda _op: None)
    outbox.offer_latest("1", "A", frame("1"))
    await asyncio.sleep(0)  # the writer takes A=1 and blocks on the socket
    for n in range(2, 100):
        outbox.offer_latest("1", "A" if n % 2 else "B", frame(str(n)))
    assert len(outbox) == 2  # one pending frame per key, however many were offered
    socket.open.set()
    assert await outbox.drain(1)
    assert socket.sent == [
        '{"id":"1","type":"next","payload":1}',
        '{"id":"1","type":"next","payload":98}',  # B took the first free slot
        '{"id":"1","type":"next","payload":99}',
    ]


async def test_lossless_frames_overflow_once_instead_of_dropping() -> None:
    socket = Socket()
    socket.open.clear()
    overflowed: list[str] = []
    outbox = Outbox(socket.send, capacity=3, on_overflow=overflowed.append)
    outbox.offer_all("op", frame("0"))
    await asyncio.sleep(0)  # in flight
    for n in range(1, 4):
        outbox.offer_all("op", frame(str(n)))
    assert overflowed == [] and len(outbox) == 3
    outbox.offer_all("op", frame("4"))
    outbox.offer_all("op", frame("5"))
    assert overflowed == ["op"]
    assert outbox.closed and len(outbox) == 0  # nothing more is held for that socket


async def test_control_frames_follow_what_is_pending_and_discard_drops_one_operation() -> None:
    socket = Socket()
    socket.open.clear()
    outbox = Outbox(socket.send, capacity=10, on_overflow=lambda _op: None)
    outbox.offer_all("a", frame("a1"))
    await asyncio.sleep(0)
    outbox.offer_all("a", frame("a2"))
    outbox.offer_all("b", frame("b1"))
    outbox.offer_control("b", '{"type":"complete","id":"b"}')
    outbox.discard("a")
    socket.open.set()
    assert await outbox.drain(1)
    assert socket.sent == [
        '{"id":"1","type":"next","payload":a1}',  # already in flight
        '{"id":"1","type":"next","payload":b1}',
        '{"type":"complete","id":"b"}',
    ]


async def test_what_piled_up_behind_a_slow_write_goes_out_in_one_write_in_order() -> None:
    socket = Socket()
    socket.open.clear()
    outbox = Outbox(socket.send, capacity=100, on_overflow=lambda _op: None)
    outbox.offer_all("a", frame("0"))
    await asyncio.sleep(0)  # the first write is in flight, blocked
    for n in range(1, 11):
        outbox.offer_all("a", frame(str(n)))
    outbox.offer_control("a", '{"type":"complete","id":"a"}')
    socket.open.set()
    assert await outbox.drain(1)
    assert socket.writes == [1, 11]  # the ten frames and the complete: one write
    assert socket.sent[1:] == [
        *(f'{{"id":"1","type":"next","payload":{n}}}' for n in range(1, 11)),
        '{"type":"complete","id":"a"}',
    ]


async def test_a_stream_runs_once_replays_latest_to_late_joiners_and_stops_with_the_last() -> None:
    started: list[int] = []
    release = asyncio.Event()
    stopped = asyncio.Event()

    async def source() -> AsyncIterator[Item]:
        started.append(1)
        try:
            yield Next("p1", "A")
            yield Next("p2", "B")
            yield Next("p3", "A")
            await release.wait()
            yield Next("p4", "B")
            await asyncio.Event().wait()
        finally:
            stopped.set()

    class Member:
        def __init__(self) -> None:
            self.got: list[tuple[Hashable, str]] = []
            self.failure: Failure | None = None

        def deliver(self, key: Hashable, payload: str) -> None:
            self.got.append((key, payload))

        def finish(self, failure: Failure | None) -> None:
            self.failure = failure

    registry = MultiplexRegistry()
    key = StreamKey("doc", "{}", None, ("public", "ANONYMOUS", False))
    first, late = Member(), Member()
    stream = registry.join(key, source, first, conflate=True)
    for _ in range(5):
        await asyncio.sleep(0)
    assert registry.join(key, source, late, conflate=True) is stream
    assert late.got == [("A", "p3"), ("B", "p2")]  # the latest per key, first
    release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert first.got[-1] == late.got[-1] == ("B", "p4")
    assert started == [1] and registry.stats.executions == 4
    stream.detach(first)
    assert registry.stream_count == 1
    stream.detach(late)
    assert registry.stream_count == 0
    await asyncio.wait_for(stopped.wait(), 1)
