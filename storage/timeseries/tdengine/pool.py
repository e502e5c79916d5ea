"""Blocking TDengine connections, used only from a dedicated thread pool.

Both connectors block the calling thread for the whole round trip, so every
call runs on a worker of a ``ThreadPoolExecutor`` with exactly as many threads
as connections: a worker always finds a free connection, and a slow query
occupies one worker, never the event loop. A connection that fails with a
transient error is closed and replaced lazily on its next use, which is how
the pool heals after the server comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from storage.timeseries.tdengine.errors import TDengineConfigError, TDengineError, code_from
from storage.timeseries.tdengine.url import NATIVE, WEBSOCKET, TDengineURL

T = TypeVar("T")
Row = tuple[Any, ...]


class Connection(Protocol):
    """What the store needs from a connection; implementations raise :class:`TDengineError`."""

    def execute(self, sql: str) -> int: ...

    def query(self, sql: str) -> list[Row]: ...

    def close(self) -> None: ...


ConnectionFactory = Callable[[], Connection]


class _NativeConnection:
    """``taos`` (taospy) over the native client library ``libtaos``."""

    def __init__(self, module: Any, url: TDengineURL) -> None:
        self._errors: type[BaseException] = module.error.Error
        try:
            self._connection = module.connect(
                host=url.host, port=url.port, user=url.user, password=url.password
            )
        except self._errors as error:
            raise _translate(error) from None

    def execute(self, sql: str) -> int:
        try:
            return int(self._connection.execute(sql))
        except self._errors as error:
            raise _translate(error) from None

    def query(self, sql: str) -> list[Row]:
        try:
            result = self._connection.query(sql)
            try:
                return [tuple(row) for row in result.fetch_all()]
            finally:
                result.close()
        except self._errors as error:
            raise _translate(error) from None

    def close(self) -> None:
        with contextlib.suppress(self._errors):
            self._connection.close()


class _WebSocketConnection:
    """``taosws`` (taos-ws-py) over taosAdapter's WebSocket endpoint; no client library needed."""

    def __init__(self, module: Any, url: TDengineURL) -> None:
        self._errors: type[BaseException] = getattr(module, "Error", Exception)
        with _translated(self._errors):
            self._connection = module.connect(
                host=url.host, port=url.port, user=url.user, password=url.password
            )

    def execute(self, sql: str) -> int:
        with _translated(self._errors):
            return int(self._connection.execute(sql) or 0)

    def query(self, sql: str) -> list[Row]:
        with _translated(self._errors):
            return [tuple(row) for row in self._connection.query(sql)]

    def close(self) -> None:
        with contextlib.suppress(self._errors):
            self._connection.close()


@contextlib.contextmanager
def _translated(errors: type[BaseException]) -> Iterator[None]:
    """Connector errors as :class:`TDengineError`, Rust panics in taos-ws-py included.

    pyo3 raises a panic as ``pyo3_runtime.PanicException``, a ``BaseException``
    outside ``taosws.Error``: left alone it would bypass the pool's reconnect
    and the store's retries, and could end the outage buffer's flusher task.
    As a code-less (so transient) error the connection is dropped and replaced.
    """
    try:
        yield
    except errors as error:
        raise _translate(error) from None
    except BaseException as error:
        if type(error).__name__ != "PanicException":
            raise
        raise TDengineError(f"taos-ws-py panicked: {error}") from error


def _translate(error: BaseException) -> TDengineError:
    message = str(getattr(error, "msg", None) or error)
    return TDengineError(message, code_from(getattr(error, "errno", None), str(error)))


def _import_native() -> Any:
    try:
        import taos
    except Exception as error:
        # taospy loads libtaos at import time and raises its own InterfaceError
        # (not ImportError) when the library is missing, hence the broad catch.
        raise TDengineConfigError(
            "taos:// needs the TDengine client library (libtaos.so from the TDengine client "
            "package, found via LD_LIBRARY_PATH) in addition to the taospy wheel; "
            f"or use taosws:// with the taos-ws-py package instead. Import failed: {error}"
        ) from error
    return taos


def _import_websocket() -> Any:
    try:
        import taosws
    except ImportError as error:
        raise TDengineConfigError(
            "taosws:// needs the WebSocket connector: pip install taos-ws-py "
            f"(import failed: {error})"
        ) from error
    return taosws


def connection_factory(url: TDengineURL) -> ConnectionFactory:
    """A factory for the URL's connector; imports it now so a missing driver fails at start-up."""
    if url.scheme == NATIVE:
        native = _import_native()
        return lambda: _NativeConnection(native, url)
    if url.scheme == WEBSOCKET:
        websocket = _import_websocket()
        return lambda: _WebSocketConnection(websocket, url)
    raise TDengineConfigError(f"unsupported scheme {url.scheme!r}")


class ConnectionPool:
    def __init__(self, connect: ConnectionFactory, size: int) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self._connect = connect
        # ``None`` is a slot whose connection must be (re)opened before use.
        self._slots: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        for _ in range(size):
            self._slots.put(None)
        self._size = size
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="tdengine")
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` with a connection on a worker thread."""
        if self._closed:
            raise TDengineError("TDengine connection pool is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[Connection], T]) -> T:
        connection = self._slots.get()
        try:
            if connection is None:
                connection = self._connect()
            return work(connection)
        except TDengineError as error:
            if error.transient and connection is not None:
                connection.close()
                connection = None
            raise
        finally:
            self._slots.put(connection)

    async def close(self) -> None:
        """Wait for running calls (off the event loop), then close every connection."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        for _ in range(self._size):
            connection = self._slots.get_nowait()
            if connection is not None:
                connection.close()
