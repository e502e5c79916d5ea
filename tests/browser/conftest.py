"""A live server with the browser pages, on a fresh copy of the seeded SQLite template.

The pages do not depend on the database, so SQLite alone is enough (no PostgreSQL
run). ``MARKET_FEED`` is ``none``: the tests feed the ticks they expect to see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from tests.conftest import live_server, make_settings, running_app, sql_database


@pytest.fixture
async def web_app(request: pytest.FixtureRequest) -> AsyncIterator[Starlette]:
    """Started (lifespan) but with no socket: the page checks use httpx's ASGI transport."""
    async with sql_database(request, "sqlite") as url, running_app(make_settings(url)) as app:
        yield app


@pytest.fixture
async def web_server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Starlette]]:
    """``host:port`` and the app of a real uvicorn server, as the browser needs a socket."""
    async with sql_database(request, "sqlite") as url, live_server(make_settings(url)) as running:
        yield running
