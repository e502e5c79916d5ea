"""(b) HTTP queries at fixed concurrency with autocannon (npm), on core 1.

Every server first answers the query once and the answer is checked (no errors,
a full page), so a fast error page can never pass for throughput.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from bench import profile
from bench.cluster import PEERS, Cluster, Server
from bench.processes import (
    LOAD_CPU,
    SERVER_CPU,
    CoreMeter,
    CpuMeter,
    memory_mb,
    spawn,
    wait_for_quiet,
)
from bench.seed import KLINES_SYMBOL

CONCURRENCY = 32
PAGE = 100

ORDERS = (
    "query NestedOrders { orders(first: 100) { edges { node { id status quantity "
    "symbol { code name } strategy { name symbol { code } } } } } }"
)


def postgraphile_orders(user_id: int) -> str:
    """PostGraphile's generated names for the same shape: the demo user's orders, newest first."""
    return (
        "query NestedOrders { allOrders(first: 100, orderBy: ID_DESC, "
        f'condition: {{ userId: "{user_id}" }}) {{ edges {{ node {{ id status quantity '
        "symbolBySymbolCode { code name } "
        "strategyByStrategyId { name symbolBySymbolCode { code } } } } } }"
    )


KLINES = (
    f'query Klines {{ klines(symbol: "{KLINES_SYMBOL}", interval: MINUTE_1, limit: 100) '
    "{ time open high low close volume } }"
)


# What a request costs besides its resolvers: transport, parsing, validation, limits.
TRIVIAL = "{ __typename }"

# Issue 16's yardstick for placement over HTTP: the cheapest authenticated
# mutation there is (the token is checked, the resolver runs one indexed read).
TRIVIAL_MUTATION = 'mutation { cancelOrder(id: "999999999") { userErrors { code } } }'
PLACE_SYMBOL = "XRPUSDT"
PLACE_DAILY_CLOSE = f'{{ klines(symbol: "{PLACE_SYMBOL}", interval: DAY_1, limit: 1) {{ close }} }}'
OUR_SERVERS = ("ours", "ours-standard")


def place_order(limit_price: str) -> str:
    """A resting LIMIT buy of one lot below the market: validated, risk-checked and
    written through group commit, and never filled (the matcher stays idle)."""
    return (
        "mutation { placeOrder(input: { symbol: "
        f'"{PLACE_SYMBOL}", side: BUY, type: LIMIT, quantity: "0.1", limitPrice: "{limit_price}"'
        " }) { order { id status rejectReason } userErrors { code message } } }"
    )


def query_for(
    workload: str, kind: str, demo_user_id: int, limit_price: str | None = None
) -> str | None:
    """The query text of ``workload`` for a server kind, or None if it does not serve it."""
    if workload == "trivial":
        return TRIVIAL
    if workload == "orders":
        return postgraphile_orders(demo_user_id) if kind == "postgraphile" else ORDERS
    if workload == "klines":
        return KLINES if kind in (*OUR_SERVERS, "yoga") else None
    if workload == "mutation_trivial":
        return TRIVIAL_MUTATION if kind == "ours" else None
    if workload == "place_order":
        return place_order(limit_price) if kind == "ours" and limit_price else None
    raise ValueError(workload)


async def resting_buy_price(server: Server, token: str) -> str:
    """A limit price 3 % under the last daily close of ``PLACE_SYMBOL``: inside the
    price band (centred on that close while no tick has arrived), below any ask."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            server.http_url,
            json={"query": PLACE_DAILY_CLOSE},
            headers={"authorization": f"Bearer {token}"},
        )
    close = Decimal(response.json()["data"]["klines"][0]["close"])
    return str((close * Decimal("0.97")).quantize(Decimal("0.0001")))


def check_answer(workload: str, kind: str, body: dict[str, Any]) -> int:
    """Raise unless ``body`` is a complete, error-free answer; return its item count."""
    if body.get("errors") or not body.get("data"):
        raise RuntimeError(f"{kind} {workload}: {json.dumps(body)[:500]}")
    data = body["data"]
    if workload == "mutation_trivial":
        codes = [error["code"] for error in data["cancelOrder"]["userErrors"]]
        if codes != ["NOT_FOUND"]:
            raise RuntimeError(f"{kind} mutation_trivial: {data}")
        return 1
    if workload == "place_order":
        placed = data["placeOrder"]
        if placed["userErrors"] or placed["order"]["status"] != "NEW":
            raise RuntimeError(f"{kind} place_order: {data}")
        return 1
    if workload == "trivial":
        if data != {"__typename": "Query"}:
            raise RuntimeError(f"{kind} trivial: {data}")
        return 1
    if workload == "orders":
        edges = (data.get("orders") or data.get("allOrders"))["edges"]
        nodes = [edge["node"] for edge in edges]
        symbol_key = "symbol" if kind != "postgraphile" else "symbolBySymbolCode"
        if len(nodes) != PAGE or any(not node[symbol_key]["name"] for node in nodes):
            raise RuntimeError(f"{kind} orders: incomplete page ({len(nodes)} orders)")
        return len(nodes)
    bars = data["klines"]
    if len(bars) != PAGE:
        raise RuntimeError(f"{kind} klines: {len(bars)} bars instead of {PAGE}")
    return len(bars)


async def autocannon(
    url: str, body: str, seconds: float, log_name: str, cluster: Cluster, token: str | None
) -> dict[str, Any]:
    auth = ["--headers", f"authorization=Bearer {token}"] if token else []
    child = await spawn(
        "autocannon",
        [
            "node",
            "node_modules/autocannon/autocannon.js",
            "--connections",
            str(CONCURRENCY),
            "--duration",
            str(seconds),
            "--method",
            "POST",
            "--headers",
            "content-type=application/json",
            *auth,
            "--body",
            body,
            "--json",
            url,
        ],
        cpu=LOAD_CPU,
        cwd=PEERS / "loadgen",
        log_path=cluster.workdir / log_name,
        pipe_stdio=True,
    )
    try:
        output, _ = await asyncio.wait_for(child.process.communicate(), seconds + 60)
    finally:
        await child.stop()
    report: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    return report


async def run(
    cluster: Cluster,
    server: Server,
    workload: str,
    *,
    demo_user_id: int,
    warmup: float,
    duration: float,
    token: str | None = None,
    profile_to: Path | None = None,
    limit_price: str | None = None,
) -> dict[str, Any] | None:
    """Autocannon ``workload`` against ``server``; None if the server does not serve it.

    ``token`` is sent as a Bearer token (our server's orders belong to the demo
    user; the peers have no authentication and serve that user's orders).
    With ``profile_to``, py-spy samples the server during the measured run.
    """
    query = query_for(workload, server.kind, demo_user_id, limit_price)
    if query is None:
        return None
    quiet = await wait_for_quiet()
    body = json.dumps({"query": query})
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(server.http_url, content=body, headers=headers)
        items = check_answer(workload, server.kind, response.json())
        size = len(response.content)
    await autocannon(
        server.http_url, body, warmup, f"autocannon-{server.kind}-warmup.log", cluster, token
    )
    meter, cores = CpuMeter(server.pid), CoreMeter()
    meter.start()
    cores.start()
    sampling = (
        asyncio.create_task(profile.record(server.pid, duration - 1, profile_to))
        if profile_to is not None
        else None
    )
    report = await autocannon(
        server.http_url, body, duration, f"autocannon-{server.kind}-{workload}.log", cluster, token
    )
    cpu = meter.percent()
    core_busy = cores.percent()
    profiled = await sampling if sampling is not None else None
    async with httpx.AsyncClient(timeout=30) as client:
        # Still a full answer after the load: a mutation refused with a user error
        # (funds run out, say) is a 200 too, and must not pass for throughput.
        response = await client.post(server.http_url, content=body, headers=headers)
        check_answer(workload, server.kind, response.json())
    latency = report["latency"]
    if int(report.get("non2xx", 0)):
        # Refusals (429, 5xx) are fast: counting them as requests would flatter the server.
        raise RuntimeError(f"{server.kind} {workload}: {report['non2xx']} non-2xx responses")
    return {
        "server": server.kind,
        "workload": workload,
        "concurrency": CONCURRENCY,
        "requests_per_s": round(float(report["requests"]["average"]), 1),
        "requests": int(report["requests"]["total"]),
        "latency_ms": {
            "p50": latency["p50"],
            "p90": latency["p90"],
            "p99": latency["p99"],
            "max": latency["max"],
            "mean": latency["average"],
        },
        "non_2xx": int(report.get("non2xx", 0)),
        "errors": int(report.get("errors", 0)) + int(report.get("timeouts", 0)),
        "items_per_response": items,
        "response_bytes": size,
        "cpu_percent": {"server": cpu},
        "core0_other_percent": round(max(0.0, core_busy.get(SERVER_CPU, 0.0) - cpu), 1),
        "core_busy_percent": core_busy,
        "before": quiet,
        "server_memory": memory_mb(server.pid),
        "seconds": duration,
        **({"profile": profiled} if profiled is not None else {}),
    }
