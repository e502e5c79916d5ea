"""Real server processes (``quantgraph serve``) for multi-process tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.servers import free_port


class ServerProcess:
    """Parameters:
    env: settings for the process (DATABASE_URL, BROADCAST_URL, …).
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        # Every process of a cluster signs with the same secret (PostgreSQL requires one).
        self.env = {
            "JWT_SECRET": "a-test-cluster-secret-of-32-chars",
            **os.environ,
            **env,
            "QUANTGRAPH_PORT": str(self.port),
        }
        self.log_path = Path(tempfile.mkstemp(prefix="quantgraph-server-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def start(self, timeout: float = 60) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "graphql_api.server.cli", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy in {timeout}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


@contextlib.contextmanager
def server_processes(count: int, env: dict[str, str]) -> Iterator[list[ServerProcess]]:
    servers = [ServerProcess(env) for _ in range(count)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
            server.log_path.unlink(missing_ok=True)
