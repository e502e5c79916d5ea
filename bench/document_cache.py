"""What the document cache saves per request: Python calls (deterministic) and time.

Each document is sent as the demo user through the fully hardened app (rate
limits on but never reached, access log off) over httpx's ASGI transport, on a
fresh SQLite database, once with the document cache on (its defaults) and once
with ``DOCUMENT_CACHE_SIZE=0`` (parse and validate every request, as before the
cache), in the same process:

- ``trivial``: ``{ __typename }``, what a request costs besides its resolvers;
- ``read``: a page of symbols with their quotes (:mod:`bench.limits_overhead`);
- ``nested``: the benchmark's nested orders page (:mod:`bench.http_queries`), as
  the demo user (whose few demo orders leave the resolvers little to do);
- ``read-apq``: the read query by its persisted-query hash alone.

Python calls per request come from cProfile over ``--requests`` requests; time
(wall clock, and the process' CPU time, which other processes disturb less) is
the median of ``--rounds`` rounds, each the mean over ``--requests`` requests
(cProfile off). Pin it: ``taskset -c 1``.

    taskset -c 1 .venv/bin/python -m bench.document_cache [--requests 300] [--rounds 7]

Writes bench/results/document_cache.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.call_counts import calls_per_item
from bench.http_queries import ORDERS, TRIVIAL
from bench.limits_overhead import QUERY
from graphql_api.hardening.persisted_queries.stores import document_hash
from graphql_api.server.app import create_app
from tests.conftest import login_token
from tests.hardening.conftest import hardened_settings

RESULTS = Path(__file__).parent / "results" / "document_cache.json"
WARM_UP = 50


def payloads() -> dict[str, dict[str, Any]]:
    apq = {"persistedQuery": {"version": 1, "sha256Hash": document_hash(QUERY)}}
    return {
        "trivial": {"query": TRIVIAL},
        "read": {"query": QUERY},
        "nested": {"query": ORDERS},
        "read-apq": {"extensions": apq},
    }


async def measure(
    database_url: str, cache_size: int, requests: int, rounds: int
) -> dict[str, dict[str, Any]]:
    settings = hardened_settings(
        database_url,
        RATE_LIMIT_BURST=1e12,
        RATE_LIMIT_PER_SECOND=1e12,
        RATE_LIMIT_ANONYMOUS_BURST=1e12,
        RATE_LIMIT_ANONYMOUS_PER_SECOND=1e12,
        ACCESS_LOG=False,
        DOCUMENT_CACHE_SIZE=cache_size,
    )
    app = create_app(settings)
    results: dict[str, dict[str, Any]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {await login_token(app)}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as client:
            # Registers the read query for its hash.
            apq = payloads()["read-apq"]["extensions"]
            registered = await client.post("/graphql", json={"query": QUERY, "extensions": apq})
            assert "errors" not in registered.json(), registered.text
            for name, payload in payloads().items():
                for _ in range(WARM_UP):
                    response = await client.post("/graphql", json=payload)
                assert "errors" not in response.json(), (name, response.text)
                profile = cProfile.Profile()
                profile.enable()
                for _ in range(requests):
                    await client.post("/graphql", json=payload)
                profile.disable()
                means, cpu_means = [], []
                for _ in range(rounds):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    for _ in range(requests):
                        await client.post("/graphql", json=payload)
                    means.append((time.perf_counter() - started) / requests * 1e6)
                    cpu_means.append((time.process_time() - cpu_started) / requests * 1e6)
                results[name] = {
                    "calls_per_request": calls_per_item(profile, requests),
                    "median_us_per_request": round(statistics.median(means), 1),
                    "median_cpu_us_per_request": round(statistics.median(cpu_means), 1),
                    "rounds_us": [round(mean, 1) for mean in means],
                }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="quantgraph-document-cache-"))
    try:
        off = asyncio.run(
            measure(f"sqlite+aiosqlite:///{directory / 'off.db'}", 0, args.requests, args.rounds)
        )
        on = asyncio.run(
            measure(f"sqlite+aiosqlite:///{directory / 'on.db'}", 1000, args.requests, args.rounds)
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result = {
        "command": (
            "taskset -c 1 .venv/bin/python -m bench.document_cache "
            f"--requests {args.requests} --rounds {args.rounds}"
        ),
        "machine": {"python": platform.python_version()},
        "documents": {
            name: payload.get("query", "(hash only)") for name, payload in payloads().items()
        },
        "cache_off": off,
        "cache_on": on,
        "saved": {
            name: {
                "calls_per_request": round(
                    off[name]["calls_per_request"] - on[name]["calls_per_request"], 1
                ),
                "median_us_per_request": round(
                    off[name]["median_us_per_request"] - on[name]["median_us_per_request"], 1
                ),
                "median_cpu_us_per_request": round(
                    off[name]["median_cpu_us_per_request"] - on[name]["median_cpu_us_per_request"],
                    1,
                ),
            }
            for name in on
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
