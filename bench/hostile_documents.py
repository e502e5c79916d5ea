"""How long a hostile document holds the server before it is refused.

Sends each document below to one app on a fresh SQLite database through
httpx's ASGI transport (the full hardened stack: middlewares, limits, rate
limits off so every request is judged on its shape) and records, per document,
the answer's error code and the median wall and CPU time over N requests:

- fragment bombs: each fragment spreads the next one twice, ``levels`` deep
  (2^levels copies of one field once expanded);
- thirty aliased copies of GraphiQL's introspection query, and one;
- 300 repeated object fields (graphql-core's overlap check is quadratic);
- a plain page of symbols, for scale.

    .venv/bin/python -m bench.hostile_documents [--requests 20] [--levels 10 20 30]

Self-contained (no test helpers), so the same file can be run against an
older checkout to compare. Writes bench/results/hostile_documents.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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
    FieldNode,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_introspection_query,
    parse,
    print_ast,
)

from graphql_api.platform.settings import Settings
from graphql_api.server.app import create_app

RESULTS = Path(__file__).parent / "results" / "hostile_documents.json"
PLAIN = "{ symbols(first: 20) { edges { node { code name quote { last } } } } }"


def fragment_bomb(levels: int) -> str:
    """``query { ...F0 }`` where F<i> spreads F<i+1> twice: 2^levels ``exchanges``."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on Query {{ exchanges }}")
    return "query { ...F0 }\n" + "\n".join(fragments)


def aliased_introspection(copies: int) -> str:
    """GraphiQL's introspection query with its ``__schema`` field under ``copies`` aliases."""
    document = parse(get_introspection_query(descriptions=True))
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    field = operation.selection_set.selections[0]
    assert isinstance(field, FieldNode)
    aliased = tuple(
        FieldNode(
            alias=NameNode(value=f"a{i}"),
            name=field.name,
            arguments=field.arguments,
            directives=field.directives,
            selection_set=field.selection_set,
        )
        for i in range(copies)
    )
    copied = dataclasses.replace(operation, selection_set=SelectionSetNode(selections=aliased))
    return print_ast(dataclasses.replace(document, definitions=(copied, *document.definitions[1:])))


def documents(levels: list[int]) -> dict[str, str]:
    cases = {f"fragment bomb, {n} levels": fragment_bomb(n) for n in levels}
    cases["introspection x30 (aliased)"] = aliased_introspection(30)
    cases["introspection x1"] = aliased_introspection(1)
    cases["300 repeated object fields"] = "{ " + " ".join(["me { username }"] * 300) + " }"
    cases["plain symbols page"] = PLAIN
    return cases


def outcome(body: dict[str, Any]) -> str:
    errors = body.get("errors") or []
    if not errors:
        return "answered"
    return str((errors[0].get("extensions") or {}).get("code", "error"))


async def measure(client: httpx.AsyncClient, query: str, requests: int) -> dict[str, Any]:
    walls, cpus, codes = [], [], set()
    for _ in range(requests):
        wall, cpu = time.perf_counter(), time.process_time()
        response = await client.post("/graphql", json={"query": query})
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
        codes.add(outcome(response.json()))
    return {
        "bytes": len(query.encode()),
        "outcome": sorted(codes),
        "median_ms": round(statistics.median(walls) * 1000, 2),
        "median_cpu_ms": round(statistics.median(cpus) * 1000, 2),
        "max_ms": round(max(walls) * 1000, 2),
    }


async def run(requests: int, levels: list[int], directory: Path) -> dict[str, Any]:
    settings = Settings(
        DATABASE_URL=f"sqlite+aiosqlite:///{directory / 'bench.db'}",
        MARKET_FEED="none",
        BROADCAST_URL="memory://",
        RATE_LIMIT=False,
    )
    app = create_app(settings)
    results: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, query in documents(levels).items():
                results[name] = await measure(client, query, requests)
                print(f"{name:32} {results[name]}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="quantgraph-bench-"))
    try:
        results = asyncio.run(run(args.requests, args.levels, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report = {
        "command": "python -m bench.hostile_documents "
        f"--requests {args.requests} --levels {' '.join(map(str, args.levels))}",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
