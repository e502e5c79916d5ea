"""Shutdown of the background tasks: bounded, and loud about a task that will not stop."""

from __future__ import annotations

import asyncio
import time

import pytest

from graphql_api.server import runtime


async def test_a_task_that_will_not_stop_is_logged_and_left_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "SHUTDOWN_GRACE_SECONDS", 0.2)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # a driver call that swallows the cancellation

    async def obedient() -> None:
        await asyncio.sleep(10)

    tasks = [
        asyncio.create_task(stubborn(), name="stubborn"),
        asyncio.create_task(obedient(), name="obedient"),
    ]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    started = time.perf_counter()
    stuck = await runtime._await_stopped(tasks)
    assert time.perf_counter() - started < 5
    assert stuck == ["stubborn"]
    assert tasks[1].cancelled()
    release.set()
    tasks[0].cancel()
    await asyncio.wait([tasks[0]], timeout=1)
