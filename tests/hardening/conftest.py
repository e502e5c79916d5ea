"""The app with hardening at its defaults (rate limits on), which the rest of the
suite turns off, and settings that start from a clean environment."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from starlette.applications import Starlette

from graphql_api.platform.hardening_settings import HardeningSettings
from graphql_api.platform.settings import Settings
from graphql_api.server.hardening import Hardening
from tests.conftest import http_client, login_token, make_settings, running_app, sql_database

HARDENING_ENV = [f.alias for f in HardeningSettings.model_fields.values() if f.alias is not None]


@pytest.fixture(autouse=True)
def _clean_hardening_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HARDENING_ENV:
        monkeypatch.delenv(name, raising=False)


def hardened_settings(database_url: str, **overrides: Any) -> Settings:
    """The suite's settings with the limits back at their defaults (rate limits on)."""
    return make_settings(
        database_url,
        # A role read once stays cached for the test (changes still apply at once):
        # the checks below count the SQL a request runs, and a slow machine must
        # not turn an expired cache entry into a statement.
        **{
            "RATE_LIMIT": True,
            "MATCHER_ENABLED": False,
            "ALERT_ENGINE_ENABLED": False,
            "WEBHOOKS_ENABLED": False,
            "ROLE_CACHE_SECONDS": 3600,
            **overrides,
        },
    )


@pytest.fixture
async def sqlite_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with sql_database(request, "sqlite") as url:
        yield url


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a module (or parametrize) to change the hardened app's settings."""
    return {}


@pytest.fixture
async def hardened_app(
    sqlite_url: str, settings_overrides: dict[str, Any]
) -> AsyncIterator[Starlette]:
    async with running_app(hardened_settings(sqlite_url, **settings_overrides)) as app:
        yield app


@pytest.fixture
async def trader(hardened_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The demo TRADER, sending JSON (which passes CSRF prevention), whose role the
    server has already read (as after the first request of a session)."""
    token = await login_token(hardened_app)
    await hardened_app.state.services.auth.authenticate(token)
    async with http_client(hardened_app, token) as http:
        yield http


@pytest.fixture
async def anonymous(hardened_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(hardened_app, None) as http:
        yield http


def hardening_of(app: Starlette) -> Hardening:
    hardening: Hardening = app.state.hardening
    return hardening


@contextlib.contextmanager
def counting_statements(app: Starlette) -> Iterator[list[str]]:
    """SQL statements the app runs meanwhile: refusals before execution run none."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = app.state.services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
