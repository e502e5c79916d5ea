"""What the hardening costs per request: query limits, the other extensions, the middlewares.

Runs one app on a fresh SQLite database and times N requests of a typical
query (a page of symbols with their quotes) through httpx's ASGI transport,
swapping the GraphQL view's schema between variants, interleaved request by
request so drift affects every variant alike:

- ``base``: ``ErrorCodes`` + ``MaskInternalErrors`` (today's schema);
- ``limits``: + tokens, depth, aliases and cost limits;
- ``all``: + metrics, service errors, persisted queries, rate limits (memory);

plus the same query through the plain ``create_app`` (no middlewares) and the
fully hardened app (middlewares + all extensions); and, free of database
noise, parse + validate of the query with and without the limit rules.

    .venv/bin/python -m bench.limits_overhead [--requests 500]

Writes bench/results/limits_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from graphql import (
    parse,
    specified_rules,
    validate,
)
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.extensions import SchemaExtension

from graphql_api.hardening.query_limits.guard import limit_extensions, refusals, validation_rules
from graphql_api.server.app import QuantgraphGraphQL, create_app
from graphql_api.server.hardening import Hardening
from schema import QuantgraphSchema, build_schema
from tests.hardening.conftest import hardened_settings

RESULTS = Path(__file__).parent / "results" / "limits_overhead.json"
QUERY = """
query Symbols {
  symbols(first: 20) { edges { cursor node { code name exchange quote { last time } } } }
}
"""


def view_of(app: Starlette) -> QuantgraphGraphQL:
    return next(
        route.endpoint
        for route in app.routes
        if isinstance(route, Route) and isinstance(route.endpoint, QuantgraphGraphQL)
    )


async def timed(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await client.post("/graphql", json={"query": QUERY})
    elapsed = time.perf_counter() - started
    assert "errors" not in response.json(), response.text
    return elapsed


def validation_micro(
    schema: QuantgraphSchema, hardening: Hardening, count: int
) -> dict[str, float]:
    """Parse + validate alone (pure CPU, no noise from the database)."""
    limits = hardening.query_limits
    limited_rules = validation_rules(tuple(specified_rules), limits.introspection)

    def run(extra: bool) -> float:
        started = time.perf_counter()
        for _ in range(count):
            document = parse(QUERY, max_tokens=limits.max_tokens if extra else None)
            if extra:
                errors, _cost = refusals(limits, schema._schema, document, None, {})
                assert not errors
            chosen = limited_rules if extra else specified_rules
            assert not validate(schema._schema, document, chosen)
        return (time.perf_counter() - started) / count * 1e6

    run(True)
    base, limited = run(False), run(True)
    return {
        "parse_validate_us": round(base, 1),
        "with_limits_us": round(limited, 1),
        "overhead_us": round(limited - base, 1),
    }


async def measure(database_url: str, requests: int) -> dict[str, Any]:
    # Buckets that never run dry: the check runs, the refusal never happens.
    settings = hardened_settings(
        database_url,
        RATE_LIMIT_ANONYMOUS_BURST=1e12,
        RATE_LIMIT_ANONYMOUS_PER_SECOND=1e12,
        ACCESS_LOG=False,
    )
    hardened = create_app(settings)
    # What can be switched off: rate limits, APQ, metrics, CSRF prevention (the
    # query limits always run; the schema variants below isolate their cost).
    plain = create_app(
        hardened_settings(
            database_url,
            RATE_LIMIT=False,
            PERSISTED_QUERIES=False,
            METRICS=False,
            CSRF_PREVENTION=False,
            ACCESS_LOG=False,
        )
    )
    hardening: Hardening = hardened.state.hardening
    variants: dict[str, list[type[SchemaExtension] | Any]] = {
        "base": [],
        "limits": list(limit_extensions(hardening.query_limits)),
        "all": hardening.schema_extensions(),
    }
    schemas = {name: build_schema(extensions) for name, extensions in variants.items()}
    timings: dict[str, list[float]] = {name: [] for name in [*schemas, "plain_app", "hardened_app"]}
    view = view_of(hardened)
    full_schema = view.schema
    async with (
        hardened.router.lifespan_context(hardened),
        plain.router.lifespan_context(plain),
    ):
        transport = httpx.ASGITransport(app=hardened)
        plain_transport = httpx.ASGITransport(app=plain)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
            httpx.AsyncClient(transport=plain_transport, base_url="http://bench") as plain_client,
        ):
            for _ in range(50):  # warm up caches and connections
                await timed(client)
                await timed(plain_client)
            # Interleaved request by request, so drift hits every variant alike.
            for _ in range(requests):
                for name, schema in schemas.items():
                    view.schema = schema
                    timings[name].append(await timed(client))
                view.schema = full_schema
                timings["hardened_app"].append(await timed(client))
                timings["plain_app"].append(await timed(plain_client))
    summary: dict[str, Any] = {
        name: {
            "mean_us": round(statistics.fmean(values) * 1e6, 1),
            "median_us": round(statistics.median(values) * 1e6, 1),
            "requests": len(values),
        }
        for name, values in timings.items()
    }
    base = summary["base"]["median_us"]
    for name in ("limits", "all"):
        summary[name]["overhead_vs_base_us"] = round(summary[name]["median_us"] - base, 1)
    summary["hardened_app"]["overhead_vs_plain_app_us"] = round(
        summary["hardened_app"]["median_us"] - summary["plain_app"]["median_us"], 1
    )
    summary["validation_only"] = validation_micro(schemas["base"], hardening, requests)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="quantgraph-bench-"))
    try:
        result = asyncio.run(
            measure(f"sqlite+aiosqlite:///{directory / 'bench.db'}", args.requests)
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report = {
        "benchmark": "limits_overhead",
        "query": " ".join(QUERY.split()),
        "python": platform.python_version(),
        "results": result,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
