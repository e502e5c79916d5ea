"""Throwaway PostgreSQL and Redis servers for the test suite.

They are the real thing (the product talks to them for real), started on free
loopback ports in temporary directories and removed afterwards. A server that
cannot start raises :class:`ServerUnavailableError` with the reason; the fixtures
turn that into a test failure, never a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


class ServerUnavailableError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerUnavailableError(
                f"process exited with {process.returncode} before listening"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServerUnavailableError(f"nothing listening on port {port} after {timeout}s")


def _postgres_bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(found)
    if not candidates:
        raise ServerUnavailableError(
            "PostgreSQL server binaries not found (looked for /usr/lib/postgresql/*/bin/initdb "
            "and initdb on PATH): install the `postgresql` package (make test does this) or "
            "set TEST_DATABASE_URL"
        )
    return Path(candidates[0]).parent


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root; when we are root, run it as `postgres` (or nobody)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServerUnavailableError(
        "running as root and no `postgres` or `nobody` user to run PostgreSQL"
    )


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return argv if user is None else ["runuser", "-u", user, "--", *argv]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield ``postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres`` for a fresh cluster."""
    bin_dir = _postgres_bin_dir()
    user = _unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="quantgraph-pg-"))
    data = base / "data"
    data.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (base, data):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    base.chmod(0o755)
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        init = subprocess.run(
            _as_user(
                user,
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ],
            ),
            capture_output=True,
            check=False,
        )
        if init.returncode != 0:
            raise ServerUnavailableError(f"initdb failed: {init.stderr.decode(errors='replace')}")
        with (base / "postgres.log").open("wb") as log:
            process = subprocess.Popen(
                _as_user(
                    user,
                    [
                        str(bin_dir / "postgres"),
                        "-D",
                        str(data),
                        "-p",
                        str(port),
                        "-k",
                        str(base),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "max_connections=300",
                    ],
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(port, 30, process)
            _wait_until_accepting(bin_dir, port, 30)
        except ServerUnavailableError as error:
            output = (base / "postgres.log").read_text(errors="replace")[-2000:]
            raise ServerUnavailableError(f"PostgreSQL did not start: {error}\n{output}") from None
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(base, ignore_errors=True)


def _wait_until_accepting(bin_dir: Path, port: int, timeout: float) -> None:
    """The port opens before recovery ends; pg_isready says when connections are accepted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise ServerUnavailableError(
        f"PostgreSQL on port {port} not accepting connections in {timeout}s"
    )


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Yield ``redis://127.0.0.1:PORT/0`` for a fresh, non-persistent Redis."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailableError(
            "redis-server not found on PATH: install Debian's `redis-server` package "
            "(make test does this) or set TEST_REDIS_URL"
        )
    server = RedisProcess(binary)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class RedisProcess:
    """A Redis that tests can stop and restart on the same port (fault tests)."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, 15, self.process)
        except ServerUnavailableError as error:
            raise ServerUnavailableError(f"redis-server did not start: {error}") from None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
