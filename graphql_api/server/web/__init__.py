"""The browser pages: GraphiQL at ``/graphql`` and the dashboard at ``/``.

Both are static HTML with hand-written JavaScript next to them in ``static/``
(the dashboard's as small ES modules in ``static/dashboard/``, no build step);
GraphiQL, React and lightweight-charts are vendored in ``static/vendor/`` (see
its README) because Strawberry's own GraphiQL page loads them from a CDN, which
production pages should not depend on and offline machines cannot reach. The
dashboard is a client of the public GraphQL API only: it has no endpoint here.
Every URL in the pages is relative (``static/…``, ``graphql``), so they also
work under a path prefix as long as ``/static`` is mounted next to ``/graphql``.

The pages come with a Content-Security-Policy that lets them load scripts from,
and connect to, nothing but this origin: a page that holds a user's token should
not be able to send it anywhere else, even through an injected script.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

PAGES_DIR = Path(__file__).resolve().parent
STATIC_DIR = PAGES_DIR / "static"

# No inline scripts. Inline styles are allowed: GraphiQL's dialogs (Radix) insert
# them, and CSS cannot run code. data: covers the icons and fonts inlined in
# GraphiQL's CSS; connect-src 'self' covers WebSockets to this host.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def _read(name: str) -> str:
    return (PAGES_DIR / name).read_text(encoding="utf-8")


def graphiql_html() -> str:
    """GraphiQL on the vendored assets, with subscriptions over graphql-transport-ws."""
    return _read("graphiql.html")


def dashboard_html() -> str:
    """Chart, account and backtest panels; see docs/dashboard.md."""
    return _read("dashboard.html")


def graphiql_response() -> HTMLResponse:
    """What ``render_graphql_ide`` of the GraphQL view returns."""
    return HTMLResponse(graphiql_html(), headers=PAGE_HEADERS)


async def dashboard_page(_request: Request) -> HTMLResponse:
    return HTMLResponse(dashboard_html(), headers=PAGE_HEADERS)


def routes() -> list[BaseRoute]:
    """``/`` (the dashboard) and ``/static`` (the pages' scripts, styles and vendored assets)."""
    return [
        Route("/", dashboard_page, methods=["GET"], name="dashboard"),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
