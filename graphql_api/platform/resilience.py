"""Failing fast when a dependency is down: circuit breakers, timeouts, a clear error.

A :class:`CircuitBreaker` counts consecutive failures of one dependency. Past
the threshold it *opens*: calls are refused at once with
:class:`ServiceUnavailableError` instead of each waiting on a dead socket.
After ``reset_timeout`` it lets one trial call through (*half-open*); success
closes it, failure opens it again.

:func:`guard_engine` applies a breaker, connect and statement timeouts to an
SQLAlchemy engine through engine and pool events, so no caller changes: every
session, loader and background task is covered.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import structlog
from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

T = TypeVar("T")


class ServiceUnavailableError(Exception):
    """A dependency is down or too slow; the client should retry later.

    Becomes the GraphQL error code ``SERVICE_UNAVAILABLE`` (never masked).
    """

    def __init__(self, service: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service
        self.reason = reason
        self.retry_after = retry_after


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Parameters:
    name: the dependency, used in errors and metrics ("database", "redis").
    failure_threshold: consecutive failures that open the circuit.
    reset_timeout: seconds the circuit stays open before a trial call.
    clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self.opened = 0  # how many times the circuit opened (for metrics and tests)
        self.refused = 0  # calls refused while open

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_timeout:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def retry_after(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go ahead now? In half-open, one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN:
            now = self._clock()
            # A trial that never reported (cancelled) must not wedge the breaker.
            if self._trial_started is None or now - self._trial_started >= self.reset_timeout:
                self._trial_started = now
                return True
        self.refused += 1
        return False

    def check(self, *, trial: bool = True) -> None:
        """Raise :class:`ServiceUnavailableError` unless a call may go ahead.

        ``trial=False`` only refuses while fully open: for a gate that a call which
        already passed a trial gate goes through again (a new pooled connection).
        """
        allowed = self.allow() if trial else self.state is not BreakerState.OPEN
        if not allowed:
            if not trial:
                self.refused += 1
            raise ServiceUnavailableError(
                self.name, "circuit open after repeated failures", self.retry_after or None
            )

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("circuit closed", service=self.name)
        self._failures = 0
        self._opened_at = None
        self._trial_started = None

    def trip(self) -> None:
        """Open now, whatever the count: the caller has proof the dependency is down."""
        if self._opened_at is None:
            self.opened += 1
            log.warning("circuit opened", service=self.name, failures=self._failures + 1)
        self._failures = max(self._failures, self.failure_threshold)
        self._opened_at = self._clock()
        self._trial_started = None

    def record_failure(self) -> None:
        self._failures += 1
        self._trial_started = None
        if self._opened_at is not None:
            self._opened_at = self._clock()  # the trial failed: wait another period
        elif self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self.opened += 1
            log.warning("circuit opened", service=self.name, failures=self._failures)

    async def call(
        self,
        function: Callable[[], Awaitable[T]],
        *,
        is_failure: Callable[[Exception], bool] = lambda _error: True,
    ) -> T:
        """Run ``function`` through the breaker. An exception ``is_failure`` accepts
        counts against it; any other one came from a dependency that answered."""
        self.check()
        try:
            result = await function()
        except Exception as error:
            if is_failure(error):
                self.record_failure()
            else:
                self.record_success()
            raise
        except BaseException:
            self._trial_started = None  # cancelled: it proves nothing either way
            raise
        self.record_success()
        return result


async def with_timeout(awaitable: Awaitable[T], seconds: float, *, service: str) -> T:
    """Await with a deadline; a timeout becomes :class:`ServiceUnavailableError`."""
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:
        raise ServiceUnavailableError(service, f"no answer within {seconds:g}s") from None


# -- the database -----------------------------------------------------------------

_ENGINE_BREAKERS: WeakKeyDictionary[Engine, CircuitBreaker] = WeakKeyDictionary()
_GUARDED = "quantgraph_guarded"


def guard_engine(
    engine: AsyncEngine,
    breaker: CircuitBreaker,
    *,
    connect_timeout: float = 5.0,
    statement_timeout_ms: int = 10_000,
) -> CircuitBreaker:
    """Fail fast when the database is down; bound connects and statements.

    - ``do_connect`` / pool ``checkout``: refused at once while the circuit is open;
      asyncpg gets ``timeout`` (connect) and ``command_timeout`` (client side), and
      PostgreSQL ``statement_timeout`` in the startup packet (no extra round trip).
    - ``handle_error``: connection-level failures count against the breaker;
      ``after_cursor_execute``: a success closes it.

    Idempotent: a second call returns the breaker already in place. Pooled
    connections opened before the call get ``statement_timeout`` at their next
    checkout.
    """
    sync_engine = engine.sync_engine
    existing = _ENGINE_BREAKERS.get(sync_engine)
    if existing is not None:
        return existing
    _ENGINE_BREAKERS[sync_engine] = breaker
    postgres = sync_engine.dialect.name == "postgresql"

    def do_connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        breaker.check()
        if postgres:
            cparams.setdefault("timeout", connect_timeout)
            if statement_timeout_ms:
                cparams.setdefault("command_timeout", statement_timeout_ms / 1000 + 1)
                settings = dict(cparams.get("server_settings") or {})
                settings.setdefault("statement_timeout", str(statement_timeout_ms))
                cparams["server_settings"] = settings
        # Connect here (returning the connection ends the event): SQLAlchemy's
        # handle_error does not see failures to connect, and they count most.
        try:
            connection = dialect.connect(*cargs, **cparams)
        except Exception as error:
            if is_connection_failure(error):
                breaker.record_failure()
            raise
        record.info[_GUARDED] = True
        return connection

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # Pooled connections: refused while open; in half-open they may probe
        # (a dead one fails as a disconnect, a live one closes the circuit).
        breaker.check(trial=False)
        if postgres and statement_timeout_ms and not record.info.get(_GUARDED):
            # Opened before the guard: set the timeout once, outside any transaction.
            statement = f"SET statement_timeout = {int(statement_timeout_ms)}"
            dbapi_connection.run_async(lambda raw: raw.execute(statement))
            record.info[_GUARDED] = True

    def handle_error(context: ExceptionContext) -> None:
        if is_connection_failure(context.original_exception) or context.is_disconnect:
            breaker.record_failure()
            if _is_stuck_protocol(context.original_exception):
                # asyncpg's protocol is stuck (the server died under it mid-exchange):
                # the connection can never be used again, so it must leave the pool.
                context.is_disconnect = True

    def after_cursor_execute(*_args: Any) -> None:
        breaker.record_success()

    # Last among do_connect listeners, so others (metrics, tests) still run first.
    event.listen(sync_engine, "do_connect", do_connect)
    event.listen(sync_engine.pool, "checkout", checkout)
    event.listen(sync_engine, "handle_error", handle_error)
    event.listen(sync_engine, "after_cursor_execute", after_cursor_execute)
    return breaker


def engine_breaker(engine: AsyncEngine) -> CircuitBreaker | None:
    return _ENGINE_BREAKERS.get(engine.sync_engine)


def is_connection_failure(error: BaseException | None) -> bool:
    """A failure of the dependency itself (network, timeout), not of one request."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ServiceUnavailableError):
            return False  # already accounted for by whoever raised it
        if isinstance(error, (OSError, TimeoutError, ConnectionError)):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        if type(error).__name__ in _DRIVER_CONNECTION_ERRORS:
            return True
        if (
            type(error).__module__.startswith("redis")
            and type(error).__name__ in _REDIS_CONNECTION_ERRORS
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


# asyncpg and redis-py names, matched by name so this module imports neither driver.
_DRIVER_CONNECTION_ERRORS = frozenset(
    {
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "ConnectionFailureError",
        "QueryCanceledError",
        "AdminShutdownError",
        "CrashShutdownError",
        "TooManyConnectionsError",
        "InternalClientError",  # "cannot switch to state ...; another operation is in progress"
    }
)


def _is_stuck_protocol(error: BaseException | None) -> bool:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__name__ == "InternalClientError":
            return True
        error = error.__cause__ or error.__context__
    return False


# redis-py's own ConnectionError and TimeoutError are not the builtin ones.
_REDIS_CONNECTION_ERRORS = frozenset(
    {"ConnectionError", "TimeoutError", "BusyLoadingError", "MaxConnectionsError"}
)


def as_service_unavailable(error: BaseException | None) -> ServiceUnavailableError | None:
    """The :class:`ServiceUnavailableError` an exception is, wraps, or amounts to."""
    seen: set[int] = set()
    current = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ServiceUnavailableError):
            return current
        current = current.__cause__ or current.__context__
    if is_connection_failure(error):
        return ServiceUnavailableError(_service_of(error), "connection failed")
    return None


def _service_of(error: BaseException | None) -> str:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__module__.startswith("redis"):
            return "redis"
        error = error.__cause__ or error.__context__
    return "database"
