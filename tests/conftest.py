"""Fixtures: real databases (SQLite and PostgreSQL), real Redis, the app and a live server.

PostgreSQL and Redis come from ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` or are
started here. Each test gets its own database cloned from a migrated, seeded
template, so tests are isolated and fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from graphql_api.auth import Role
from graphql_api.platform.settings import DEFAULT_DEMO_PASSWORD, Settings
from graphql_api.server.app import create_app
from graphql_api.server.demo_data import seed_demo_data
from graphql_api.server.runtime import open_services
from graphql_api.services import Services
from graphql_api.trading.shards import MatcherShard
from storage.engine import create_engine, create_session_factory
from storage.migrate import upgrade_to_head
from tests.support.servers import ServerUnavailableError, free_port, postgres_server, redis_server
from tests.support.uvicorn_server import serve_config, serving


def _dump_asyncio_tasks(signum: int, frame: object) -> None:
    """On SIGUSR1, print every asyncio task's stack: what a hung test is waiting for."""
    import sys
    import traceback

    try:
        loop = asyncio.get_event_loop()
        tasks = asyncio.all_tasks(loop)
    except RuntimeError:
        tasks = set()
    print(f"\n--- {len(tasks)} asyncio tasks ---", file=sys.stderr)
    for task in tasks:
        print(f"task {task.get_name()}: {task!r}", file=sys.stderr)
        task.print_stack(limit=20, file=sys.stderr)
    traceback.print_stack(frame, file=sys.stderr)  # type: ignore[arg-type]
    sys.stderr.flush()


if hasattr(__import__("signal"), "SIGUSR1"):
    import signal

    signal.signal(signal.SIGUSR1, _dump_asyncio_tasks)

_TASK_DUMP_LEAD_SECONDS = 10
_task_dump_timers: dict[str, threading.Timer] = {}


def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """Shortly before pytest-timeout fails a hung test, dump its asyncio tasks.

    pytest-timeout prints every thread's stack, but a hung asyncio test is one
    thread idling in ``select``: what matters is which task waits on what.
    Returning None lets pytest-timeout arm its own timer as usual.
    """
    if not settings.timeout or not hasattr(signal, "SIGUSR1"):
        return
    delay = max(settings.timeout - _TASK_DUMP_LEAD_SECONDS, 1)
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.daemon = True
    timer.start()
    _task_dump_timers[item.nodeid] = timer


def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    timer = _task_dump_timers.pop(item.nodeid, None)
    if timer is not None:
        timer.cancel()


TEST_JWT_SECRET = "a-test-signing-secret-of-32-chars!"
SETTINGS_ENV = [field.alias for field in Settings.model_fields.values() if field.alias is not None]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the environment: keep the developer's shell out of the tests."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)


def _start(manager: contextlib.AbstractContextManager[str], what: str, variable: str) -> str:
    try:
        return manager.__enter__()
    except ServerUnavailableError as error:
        pytest.fail(f"{what} is needed and could not be started ({variable} is unset): {error}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A server-level URL (database ``postgres``) for creating per-test databases."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    manager = postgres_server()
    url = _start(manager, "PostgreSQL", "TEST_DATABASE_URL")
    try:
        yield url
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield given
        return
    manager = redis_server()
    url = _start(manager, "Redis", "TEST_REDIS_URL")
    try:
        yield url
    finally:
        manager.__exit__(None, None, None)


def run_in_thread(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run setup coroutines from session fixtures, which may be requested inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _prepare(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
        async with create_session_factory(engine)() as session:
            await seed_demo_data(session, demo_username="demo")
            await session.commit()
    finally:
        await engine.dispose()


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> str:
    name = f"quantgraph_template_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(postgres_url))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        await _prepare(make_url(postgres_url).set(database=name).render_as_string(False))

    run_in_thread(create())
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    run_in_thread(_prepare(f"sqlite+aiosqlite:///{path}"))
    return path


@contextlib.asynccontextmanager
async def postgres_database(postgres_url: str, template: str) -> AsyncIterator[str]:
    name = f"quantgraph_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(_asyncpg_dsn(postgres_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def sql_database(request: pytest.FixtureRequest, kind: str) -> AsyncIterator[str]:
    """A fresh copy of the migrated, seeded template database of ``kind``."""
    if kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = Path(tempfile.mkdtemp(prefix="quantgraph-sqlite-")) / "quantgraph.db"
        shutil.copyfile(template, path)
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
        return
    server = request.getfixturevalue("postgres_url")
    pg_template = request.getfixturevalue("postgres_template")
    async with postgres_database(server, pg_template) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, migrated, seeded database: once on SQLite, once on PostgreSQL."""
    async with sql_database(request, request.param) as url:
        yield url


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "MARKET_FEED": "none",
        "BROADCAST_URL": "memory://",
        "TICK_FLUSH_INTERVAL_MS": 5,
        "RATE_LIMIT": False,  # tests/hardening covers the limits; the rest measure behaviour
    }
    if not database_url.startswith("sqlite"):
        # PostgreSQL is "production": it needs a configured secret (SQLite makes its own).
        values["JWT_SECRET"] = TEST_JWT_SECRET
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def sql_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the fresh database, disposed of afterwards."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as running:
        await until_singletons_run(running)
        yield running


async def until_singletons_run(services: Services, timeout: float = 30) -> None:
    """Wait until this process leads every cluster singleton it stands for and the
    matcher follows the tick stream.

    A fixture's app is the only process on its database, so it wins every election,
    but not at once: on a loaded machine the matcher can take its lease after a
    test's first tick, and a MARKET order placed before it then waits for a tick
    that never comes. Tests start from the state a running server is in.
    """
    shards = services.settings.matcher_shards if services.settings.matcher_enabled else 0
    progress = [
        services.activity.matcher_progress(MatcherShard(index, shards).name)
        for index in range(shards)
    ]
    leaders = services.activity.leaders

    def running() -> bool:
        led = all(leader.is_leader for leader in leaders.values())
        return led and all(shard.backlog is not None for shard in progress)

    try:
        async with asyncio.timeout(timeout):
            while not running():  # noqa: ASYNC110 - no event announces it
                await asyncio.sleep(0.01)
    except TimeoutError:
        waiting = sorted(name for name, leader in leaders.items() if not leader.is_leader)
        raise AssertionError(f"singletons not led after {timeout} s: {waiting}") from None


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[Starlette]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    async with running_app(settings) as started:
        await until_singletons_run(started.state.services)
        yield started


async def login_token(app: Starlette, username: str = "demo", password: str | None = None) -> str:
    """An access token for a user of the running app (the demo TRADER by default)."""
    services: Services = app.state.services
    pair = await services.auth.login(username, password or DEFAULT_DEMO_PASSWORD)
    assert pair is not None, f"cannot log in as {username}"
    return pair.access_token


async def user_token(app: Starlette, username: str, role: Role) -> str:
    services: Services = app.state.services
    user, errors = await services.auth.register(username, "a-good-password", role)
    assert user is not None, errors
    return await login_token(app, username, "a-good-password")


@contextlib.asynccontextmanager
async def http_client(app: Starlette, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as http:
        yield http


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in as the demo TRADER."""
    async with http_client(app, await login_token(app)) as http:
        yield http


@pytest.fixture
async def anonymous_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app, None) as http:
        yield http


@pytest.fixture
async def feed_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in as a FEED user (may call ingestTicks)."""
    async with http_client(app, await user_token(app, "feeder", Role.FEED)) as http:
        yield http


@contextlib.asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[tuple[str, Starlette]]:
    """A real uvicorn server in this process, for WebSocket tests."""
    app = create_app(settings)
    port = free_port()
    async with serving(uvicorn.Server(serve_config(app, port))):
        yield f"127.0.0.1:{port}", app


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[tuple[str, Starlette]]:
    async with live_server(settings) as running:
        await until_singletons_run(running[1].state.services)
        yield running
