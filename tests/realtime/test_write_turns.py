"""Fan-out writers take turns: a burst never holds the event loop for all subscribers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from graphql_api.realtime.multiplex import Outbox
from graphql_api.realtime.write_turns import WriteTurns


def frame(payload: str) -> tuple[str, str, str]:
    return ('{"id":"1","type":"next","payload":', payload, "}")


async def test_a_burst_of_writes_leaves_room_for_other_work_between_turns() -> None:
    # given ten connections with idle writers sharing turns of three writes
    log: list[str] = []
    turns = WriteTurns(per_turn=3)

    def socket(name: str) -> Callable[[list[str]], Awaitable[None]]:
        async def send(texts: list[str]) -> None:
            log.append(f"{name}:{texts[-1][-2]}")

        return send

    outboxes = [
        Outbox(socket(str(n)), capacity=10, on_overflow=lambda _op: None, turns=turns)
        for n in range(10)
    ]
    for outbox in outboxes:
        outbox.offer_latest("1", "A", frame("0"))
        assert await outbox.drain(1)
    log.clear()

    # and other work that wants to run once per loop iteration (reading a socket)
    async def other_work() -> None:
        while True:
            log.append("other")
            await asyncio.sleep(0)

    worker = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    # when one event reaches them all, and a newer one reaches them before their turn
    for outbox in outboxes:
        outbox.offer_latest("1", "A", frame("1"))
    for outbox in outboxes:
        outbox.offer_latest("1", "A", frame("2"))
    for outbox in outboxes:
        assert await outbox.drain(1)
    worker.cancel()
    # then each wrote once, the latest frame, in the order they asked for a turn
    writes = [entry for entry in log if entry != "other"]
    assert writes == [f"{n}:2" for n in range(10)]
    # and the other work ran between every three writes
    runs = "".join("w" if entry != "other" else "." for entry in log).split(".")
    assert max(len(run) for run in runs) == 3
    assert turns.granted == 10


async def test_without_turns_every_writer_runs_at_once() -> None:
    # the reference: writers woken directly all run before anything else does
    log: list[str] = []

    async def send(texts: list[str]) -> None:
        log.append("w")

    outboxes = [Outbox(send, capacity=10, on_overflow=lambda _op: None) for _ in range(10)]
    for outbox in outboxes:
        outbox.offer_latest("1", "A", frame("0"))
        assert await outbox.drain(1)
    log.clear()

    async def other_work() -> None:
        while True:
            log.append(".")
            await asyncio.sleep(0)

    worker = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    for outbox in outboxes:
        outbox.offer_latest("1", "A", frame("1"))
    for outbox in outboxes:
        assert await outbox.drain(1)
    worker.cancel()
    assert max(len(run) for run in "".join(log).split(".")) == 10


def test_a_turn_is_at_least_one_write() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WriteTurns(per_turn=0)


def test_turns_outlive_an_event_loop_that_ended_with_a_grant_pending() -> None:
    # given turns whose grant was scheduled on a loop that then closed
    turns = WriteTurns(per_turn=1)
    first = asyncio.new_event_loop()

    async def ask_and_leave() -> None:
        turns.request(lambda: None)
        turns.request(lambda: None)

    first.run_until_complete(ask_and_leave())
    first.close()
    # when a writer on a new loop asks for a turn, it gets one
    granted: list[str] = []

    async def ask() -> None:
        turns.request(lambda: granted.append("mine"))
        for _ in range(3):
            await asyncio.sleep(0)

    second = asyncio.new_event_loop()
    try:
        second.run_until_complete(ask())
    finally:
        second.close()
    assert granted == ["mine"]
    assert len(turns) == 0


class Socket:
    """A socket that takes writes at once (``write_now``) unless ``full``; the writer
    task's ``send`` waits until it has room again, as a transport's flow control does."""

    def __init__(self) -> None:
        self.written: list[list[str]] = []
        self.by_task: list[list[str]] = []
        self.room = asyncio.Event()
        self.room.set()
        self.gone = False

    def write_now(self, texts: list[str]) -> bool:
        if self.gone:
            raise ConnectionResetError("peer gone")
        if not self.room.is_set():
            return False
        self.written.append(list(texts))
        return True

    async def send(self, texts: list[str]) -> None:
        await self.room.wait()
        self.by_task.append(list(texts))
        self.written.append(list(texts))


def outbox_on(socket: Socket, turns: WriteTurns) -> Outbox:
    return Outbox(
        socket.send,
        capacity=10,
        on_overflow=lambda _op: None,
        turns=turns,
        write_now=socket.write_now,
    )


def payloads(batches: list[list[str]]) -> list[str]:
    return [json.loads(text)["payload"] for batch in batches for text in batch]


def sent(socket: Socket) -> list[str]:
    return payloads(socket.written)


async def test_a_turn_writes_at_once_without_waking_the_writer_task() -> None:
    socket = Socket()
    outbox = outbox_on(socket, WriteTurns(per_turn=2))
    outbox.offer_all("1", frame('"a"'))
    assert await outbox.drain(1)  # the first write starts the writer task
    first_by_task = len(socket.by_task)
    for payload in ("b", "c", "d"):
        outbox.offer_all("1", frame(f'"{payload}"'))
        assert await outbox.drain(1)
    outbox.offer_all("1", frame('"e"'))
    outbox.offer_all("1", frame('"f"'))
    assert await outbox.drain(1)
    assert sent(socket) == ["a", "b", "c", "d", "e", "f"]
    # everything after the first write went out on turns, none through the task
    assert len(socket.by_task) == first_by_task
    assert outbox.sent == 6


async def test_a_socket_that_cannot_take_a_turn_s_batch_gets_it_from_the_writer_task_first() -> (
    None
):
    socket = Socket()
    turns = WriteTurns(per_turn=1)
    outbox = outbox_on(socket, turns)
    outbox.offer_all("1", frame('"a"'))
    assert await outbox.drain(1)
    # given a socket above its high-water mark
    socket.room.clear()
    outbox.offer_all("1", frame('"b"'))
    await asyncio.sleep(0.01)  # its turn came and it could not write
    outbox.offer_all("1", frame('"c"'))
    assert not await outbox.drain(0.05)
    # when the socket drains, the batch taken on the turn goes first, then the rest
    socket.room.set()
    assert await outbox.drain(1)
    assert sent(socket) == ["a", "b", "c"]
    assert payloads(socket.by_task[-2:]) == ["b", "c"]


async def test_a_peer_gone_on_a_turn_closes_the_outbox_and_ends_its_writer() -> None:
    socket = Socket()
    outbox = outbox_on(socket, WriteTurns())
    outbox.offer_all("1", frame('"a"'))
    assert await outbox.drain(1)
    socket.gone = True
    outbox.offer_all("1", frame('"b"'))
    await asyncio.sleep(0.01)
    assert outbox.closed
    assert len(outbox) == 0
    task = outbox._task
    assert task is not None
    await asyncio.wait_for(task, 1)  # the writer task saw the outbox closed and ended
