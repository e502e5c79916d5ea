"""``quantgraph serve --workers N``: refused without a shared bus; each worker shuts
down as a single process does (operations completed, sockets closed 1001)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from graphql_api.server.websocket import GOING_AWAY
from tests.support.graphql import WsClient
from tests.support.servers import free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TICKS = 'subscription { ticks(symbols: ["BTCUSDT"]) { symbol last } }'
SERVE = [sys.executable, "-m", "graphql_api.server.cli", "serve", "--workers", "2"]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'workers.db'}"}
    env.pop("BROADCAST_URL", None)
    return {**env, "JWT_SECRET": "a-test-secret-of-32-characters!!", **extra}


def test_workers_without_a_shared_bus_are_refused(tmp_path: Path) -> None:
    done = subprocess.run(SERVE, env=environment(tmp_path), capture_output=True, text=True)
    assert done.returncode == 2
    assert "--workers 2 needs BROADCAST_URL" in done.stderr


@contextlib.contextmanager
def two_workers(tmp_path: Path, redis_url: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        SERVE,
        env=environment(tmp_path, BROADCAST_URL=redis_url, QUANTGRAPH_PORT=str(port)),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield process, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()


async def test_each_worker_completes_its_operations_and_closes_1001_on_sigterm(
    tmp_path: Path, redis_url: str
) -> None:
    with two_workers(tmp_path, redis_url) as (process, port):
        url = f"ws://127.0.0.1:{port}/graphql"
        clients = [await WsClient.open(url) for _ in range(6)]  # spread over both workers
        for client in clients:
            await client.subscribe(TICKS)
        for client in clients:
            first = await client.next_data(timeout=30)  # ticks flow to every worker
            assert first["ticks"]["symbol"] == "BTCUSDT"
        # when the supervisor is asked to stop
        process.send_signal(signal.SIGTERM)
        for client in clients:
            messages = []
            with contextlib.suppress(Exception):
                async with asyncio.timeout(30):
                    while True:
                        messages.append(await client.receive(timeout=30))
            # then every subscription was completed before its socket closed 1001
            assert {"type": "complete", "id": "1"} in messages
            assert client.connection.close_code == GOING_AWAY
        assert await asyncio.to_thread(process.wait, 60) == 0
    output = (tmp_path / "serve.log").read_text()
    # and each worker ran the server a single process runs (its GC tuned after start-up)
    assert output.count("garbage collector tuned") == 2, output[-3000:]
