"""The benchmark's world: throwaway PostgreSQL and Redis, a migrated and seeded
database, and the servers under test (ours and the Node peers), one at a time.

The harness pins itself to core 1 before starting PostgreSQL and Redis, so they
and every load generator share core 1 while the server under test has core 0
to itself (``taskset -c 0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from bench.processes import LOAD_CPU, SERVER_CPU, Child, run_checked, spawn
from tests.support.servers import free_port, postgres_server, redis_server

PEERS = Path(__file__).parent / "peers"
DATABASE = "quantgraph_bench"
NODE_PACKAGES = ("loadgen", "yoga", "postgraphile")
# The seeded demo user owns the benchmark's orders; a FEED user sends ticks.
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "bench-demo-password"
FEED_USERNAME = "bench-feed"
FEED_PASSWORD = "bench-feed-password"
# A fresh TRADER places the benchmark's HTTP orders: the demo user's seeded orders
# already hold back more cash than it has.
TRADER_USERNAME = "bench-trader"
TRADER_PASSWORD = "bench-trader-password"
# Settings shared by every quantgraph command of the run. Tokens outlive the run
# (the default 15 minutes would expire during a full one).
QUANTGRAPH_ENV = {
    "JWT_SECRET": "a-benchmark-secret-of-32-characters",  # PostgreSQL requires one
    "DEMO_USERNAME": DEMO_USERNAME,
    "DEMO_PASSWORD": DEMO_PASSWORD,
    "ACCESS_TOKEN_TTL_SECONDS": "14400",
}
LOGIN = """
mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) {
    tokens { accessToken }
    userErrors { field code message }
  }
}
"""


@dataclass(frozen=True)
class Cluster:
    database_url: str  # SQLAlchemy URL, postgresql+asyncpg://
    redis_url: str
    workdir: Path

    @property
    def pg_dsn(self) -> str:
        """The same database as a libpq URL (asyncpg, node-postgres)."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass(frozen=True)
class Server:
    kind: str  # ours | yoga | postgraphile
    child: Child
    port: int

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"


@contextlib.contextmanager
def database_servers() -> Iterator[tuple[str, str]]:
    """PostgreSQL and Redis from the test-suite helpers (removed on exit)."""
    with postgres_server() as postgres_url, redis_server() as redis_url:
        yield postgres_url, redis_url


async def prepare_database(postgres_url: str, redis_url: str, workdir: Path) -> Cluster:
    """Create the benchmark database, then ``quantgraph migrate``, ``quantgraph seed`` and
    ``quantgraph create-user`` (the FEED user that ingests ticks, a TRADER that places orders)."""
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()
    database_url = postgres_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    cluster = Cluster(database_url=database_url, redis_url=redis_url, workdir=workdir)
    env = {"DATABASE_URL": database_url, **QUANTGRAPH_ENV}
    cli = [sys.executable, "-m", "graphql_api.server.cli"]
    await run_checked([*cli, "migrate"], env=env)
    await run_checked([*cli, "seed"], env=env)
    await run_checked(
        [*cli, "create-user", FEED_USERNAME, "--role", "FEED", "--password-stdin"],
        env=env,
        input_text=FEED_PASSWORD + "\n",
    )
    await run_checked(
        [*cli, "create-user", TRADER_USERNAME, "--role", "TRADER", "--password-stdin"],
        env=env,
        input_text=TRADER_PASSWORD + "\n",
    )
    return cluster


async def login(server: Server, username: str, password: str) -> str:
    """An access token from our server's ``login`` mutation."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            server.http_url,
            json={"query": LOGIN, "variables": {"username": username, "password": password}},
        )
    body = response.json()
    tokens = ((body.get("data") or {}).get("login") or {}).get("tokens")
    if not tokens:
        raise RuntimeError(f"login as {username} failed: {body}")
    token: str = tokens["accessToken"]
    return token


async def install_node_packages() -> None:
    """``npm install`` in each peer package (quick when node_modules is up to date)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for the load generators and peers")
    for package in NODE_PACKAGES:
        await run_checked([npm, "install", "--no-audit", "--no-fund"], cwd=PEERS / package)


def our_server_env(cluster: Cluster, port: int) -> dict[str, str]:
    return {
        **QUANTGRAPH_ENV,
        "DATABASE_URL": cluster.database_url,
        "BROADCAST_URL": cluster.redis_url,
        "MARKET_FEED": "none",
        "QUANTGRAPH_PORT": str(port),
        "QUANTGRAPH_HOST": "127.0.0.1",
        # Access logs off (they are INFO): a production deployment would not log every request.
        "LOG_LEVEL": "warning",
        # The load generators are one client firing as fast as it can: rate limits would
        # answer 429 (the peers have none). Their cost is in bench/limits_overhead.py.
        "RATE_LIMIT": "false",
    }


@contextlib.asynccontextmanager
async def running_server(
    kind: str, cluster: Cluster, *, prelude: str | None = None
) -> AsyncIterator[Server]:
    """Start one server pinned to core 0, wait until it answers, stop it on exit.

    ``prelude``: Python statements our server process runs before ``quantgraph
    serve`` (what-if experiments, e.g. ``import gc; gc.freeze()``).
    """
    port = free_port()
    log_path = cluster.workdir / f"{kind}-{port}.log"
    cpu: int | str | None = SERVER_CPU
    if kind in ("ours", "ours-standard", "ours-2"):
        argv = [sys.executable, "-m", "graphql_api.server.cli", "serve"]
        if kind == "ours-2":
            # Two worker processes sharing the port, free to use both cores (issue 17's
            # scale-out row): the load generator then shares a core with one of them.
            # (Left unpinned they would inherit the harness's pin to core 1.)
            argv += ["--workers", "2"]
            cpu = f"{SERVER_CPU},{LOAD_CPU}"
        if prelude:
            argv = [
                sys.executable,
                "-c",
                f"{prelude}\nfrom graphql_api.server.cli import main\n"
                "raise SystemExit(main(['serve']))",
            ]
        env = our_server_env(cluster, port)
        if kind == "ours-standard":
            env["COMPILED_READS"] = "false"  # every read through graphql-core's executor
        cwd = None
    elif kind in ("yoga", "postgraphile"):
        argv = ["node", "server.mjs"]
        env = {
            "DATABASE_URL": cluster.pg_dsn,
            "REDIS_URL": cluster.redis_url,
            "PORT": str(port),
            "DEMO_USERNAME": DEMO_USERNAME,
        }
        cwd = PEERS / kind
    else:
        raise ValueError(f"unknown server kind {kind!r}")
    child = await spawn(kind, argv, cpu=cpu, env=env, cwd=cwd, log_path=log_path)
    try:
        server = Server(kind, child, port)
        await _wait_until_serving(server, timeout=90)
        yield server
    finally:
        await child.stop()


def log_summary(server: Server) -> dict[str, int]:
    """How much the server logged during the run (tracebacks are worth a look)."""
    path = server.child.log_path
    text = path.read_text(errors="replace") if path is not None and path.exists() else ""
    return {"lines": text.count("\n"), "tracebacks": text.count("Traceback (most recent call")}


async def _wait_until_serving(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if not server.child.alive():
                raise RuntimeError(f"{server.kind} server exited early:\n{server.child.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                response = await client.post(server.http_url, json={"query": "{ __typename }"})
                if response.status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(
        f"{server.kind} server not serving after {timeout}s:\n{server.child.log_tail()}"
    )
