"""The pages over plain HTTP (no browser): what they load is all served here.

Strawberry's stock GraphiQL page loads React and GraphiQL from a CDN; ours must
reference only files under ``/static`` that this server answers with 200, so it
works offline. The browser test (test_browser.py) checks they also run.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
from starlette.applications import Starlette

from tests.conftest import http_client

BASE = "http://testserver"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")
# Static ES module imports (`import … from "./api.js"`): the dashboard's modules
# load each other, so those files are loaded by the page too.
MODULE_IMPORT = re.compile(r"^import\s[^;]*?from\s+\"([^\"]+)\"", re.MULTILINE)


class References(HTMLParser):
    """The URLs a page loads (scripts, styles, icons) and the ones it links to."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.loads.append(values["src"] or "")
        elif tag == "link" and values.get("href"):
            self.loads.append(values["href"] or "")
        elif tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")


def references(page: httpx.Response) -> References:
    parser = References()
    parser.feed(page.text)
    return parser


async def assert_served_here(http: httpx.AsyncClient, page: httpx.Response) -> list[str]:
    """Every asset the page loads (and every module those import) is on this
    server under /static and answers 200 with its content type."""
    loaded: list[str] = []
    pending = [
        urljoin(str(page.url), reference)
        for reference in references(page).loads
        if not reference.startswith("data:")
    ]
    while pending:
        url = pending.pop(0)
        if urlsplit(url).path in loaded:
            continue
        assert urlsplit(url).netloc == "testserver", f"{url} is not on this server"
        assert urlsplit(url).path.startswith("/static/"), url
        response = await http.get(url)
        assert response.status_code == 200, (url, response.status_code)
        suffix = "." + url.rsplit(".", 1)[-1]
        assert response.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
        if suffix == ".css":
            for inner in CSS_URL.findall(response.text):
                assert inner.startswith("data:"), f"{url} loads {inner}"
        if suffix == ".js":
            pending.extend(urljoin(url, module) for module in MODULE_IMPORT.findall(response.text))
        loaded.append(urlsplit(url).path)
    return loaded


async def test_graphiql_page_loads_only_local_assets(web_app: Starlette) -> None:
    async with http_client(web_app, None) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        loaded = await assert_served_here(http, page)

    assert set(loaded) >= {
        "/static/vendor/react-18.3.1/react.production.min.js",
        "/static/vendor/react-dom-18.3.1/react-dom.production.min.js",
        "/static/vendor/graphiql-4.1.2/graphiql.min.js",
        "/static/vendor/graphiql-4.1.2/graphiql.min.css",
        "/static/graphiql-page.js",
    }
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy


async def test_graphql_requests_still_get_json(web_app: Starlette) -> None:
    """The page replaces only the IDE's HTML: GraphQL requests on the same path still run."""
    async with http_client(web_app, None) as http:
        response = await http.post("/graphql", json={"query": "{ exchanges }"})
    assert response.status_code == 200
    assert "BINANCE" in response.json()["data"]["exchanges"]


async def test_dashboard_loads_only_local_assets_and_links_to_graphiql(
    web_app: Starlette,
) -> None:
    async with http_client(web_app, None) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "content-security-policy" in page.headers
        loaded = await assert_served_here(http, page)
        links = references(page).links

    assert set(loaded) == {
        "/static/dashboard.css",
        "/static/vendor/lightweight-charts-5.2.1/lightweight-charts.standalone.production.js",
        "/static/dashboard/main.js",
        "/static/dashboard/api.js",
        "/static/dashboard/chart.js",
        "/static/dashboard/account.js",
        "/static/dashboard/backtest.js",
    }
    assert [urljoin(f"{BASE}/", link) for link in links] == [f"{BASE}/graphql"]


async def test_static_files_stay_inside_the_static_folder(web_app: Starlette) -> None:
    async with http_client(web_app, None) as http:
        for path in ("/static/../__init__.py", "/static/%2e%2e/__init__.py", "/static/nope.js"):
            response = await http.get(path)
            assert response.status_code == 404, path
