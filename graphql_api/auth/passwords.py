"""Password hashing with Argon2id (argon2-cffi's recommended parameters), off the event loop.

One Argon2id hash takes tens of milliseconds of CPU on purpose. Run on the
event loop, eight clients sending wrong passwords stall every other request
behind them; so hashing and verifying run in a small thread pool (argon2-cffi
releases the GIL while it hashes). The pool is bounded twice: ``workers``
threads, and at most ``max_pending`` hashes running or queued — past that a
caller is refused at once (:class:`HashingBusyError`) instead of queueing work
a flood of requests would never let drain.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Verifying against this when the user does not exist keeps the response time
# the same for unknown users and wrong passwords (no username probing by timing).
_DUMMY_HASH = _hasher.hash("not a real password")

T = TypeVar("T")


def hash_password(password: str) -> str:
    """Blocking: call from a worker thread (:class:`PasswordHashing`), or at start-up."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Blocking, like :func:`hash_password`."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class HashingBusyError(Exception):
    """Too many hashes are running or queued; the caller should retry shortly."""

    retry_after = 1.0


class PasswordHashing:
    """Parameters:
    workers: threads hashing at once (each keeps one core busy while it hashes).
    max_pending: hashes running or waiting for a thread; one more is refused.
    """

    def __init__(self, *, workers: int = 2, max_pending: int = 16) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="password-hash")
        self._max_pending = max(max_pending, workers)
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        if self._pending >= self._max_pending:
            raise HashingBusyError("too many sign-ins at once; retry shortly")
        loop = asyncio.get_running_loop()
        self._pending += 1
        work = self._pool.submit(function, *args)
        # Released when the thread is done, not when the caller stops waiting: a
        # cancelled request's hash still occupies its slot until it finishes.
        work.add_done_callback(lambda _: self._release_from_thread(loop))
        return await asyncio.wrap_future(work)

    def _release_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody counts any more
            loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        self._pending -= 1
