"""Group commit: batches form while a write is in flight, in order, and nobody is stranded."""

from __future__ import annotations

import asyncio

import pytest

from graphql_api.platform.group_commit import GroupCommit


class Recorder:
    """A batch writer that records its batches and holds each until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_items: set[int] = set()
        self.crash = False
        self.writing = asyncio.Event()

    async def write(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        self.writing.set()
        await self.release.wait()
        if self.crash:
            raise RuntimeError("the whole batch failed")
        return [ValueError(f"bad {i}") if i in self.fail_items else i * 10 for i in items]


async def test_a_lone_caller_is_written_at_once_in_a_batch_of_its_own() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.write)
    assert await commit.submit([1]) == [10]
    assert recorder.batches == [[1]]


async def test_callers_arriving_during_a_write_form_the_next_batch_in_order() -> None:
    recorder = Recorder()
    recorder.release.clear()
    commit = GroupCommit(recorder.write, max_batch=3)
    first = asyncio.create_task(commit.submit([1]))
    await recorder.writing.wait()  # the writer has taken [1] and waits in the database
    rest = [asyncio.create_task(commit.submit([n])) for n in range(2, 7)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == [10]
    assert [await task for task in rest] == [[20], [30], [40], [50], [60]]
    assert recorder.batches == [[1], [2, 3, 4], [5, 6]]
    assert (commit.batches, commit.largest_batch) == (3, 3)


async def test_one_items_failure_is_its_own() -> None:
    recorder = Recorder()
    recorder.fail_items = {2}
    commit = GroupCommit(recorder.write)
    results = await asyncio.gather(
        commit.submit([1]), commit.submit([2]), commit.submit([3]), return_exceptions=True
    )
    assert results[0] == [10] and results[2] == [30]
    assert isinstance(results[1], ValueError)


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_still_runs() -> None:
    recorder = Recorder()
    recorder.crash = True
    commit = GroupCommit(recorder.write)
    with pytest.raises(RuntimeError, match="whole batch"):
        await commit.submit([1, 2])
    recorder.crash = False
    assert await commit.submit([3]) == [30]


async def test_a_cancelled_caller_does_not_cancel_its_batch() -> None:
    recorder = Recorder()
    recorder.release.clear()
    commit = GroupCommit(recorder.write)
    leaver = asyncio.create_task(commit.submit([1]))
    stayer = asyncio.create_task(commit.submit([2]))
    await recorder.writing.wait()
    leaver.cancel()
    recorder.release.set()
    assert await stayer == [20]
    assert recorder.batches == [[1, 2]]  # the leaver's item was written all the same
    with pytest.raises(asyncio.CancelledError):
        await leaver


async def test_items_of_one_call_stay_together_and_in_order() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.write, max_batch=100)
    assert await commit.submit([5, 4, 3]) == [50, 40, 30]
    assert recorder.batches == [[5, 4, 3]]
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(recorder.write, max_batch=0)
