"""Faults: an answer is the truth.

Two server processes take steady traffic — traders placing LIMIT and MARKET orders
with unique clientOrderIds and canceling some, a feed ingesting ticks — while
Redis is stopped and started again, and then PostgreSQL is. Every call's answer
is written down. Once traffic stops and the cluster settles, the database is
audited directly: what each client was told is what was stored, fills, cash and
positions agree, and the clients holding ``orderUpdates`` subscriptions through
the faults saw every order as it is stored (or were told clearly that their
stream had ended, and caught up).

Assertions are about outcomes, never about timing: waits only bound how long the
cluster may take to settle.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.cluster_audit import (
    CURRENCY,
    Snapshot,
    accounts_versus_trades,
    fills_versus_orders,
    read_snapshot,
    told_versus_stored,
    watched_versus_stored,
)
from tests.e2e.cluster_traffic import (
    CALL_TIMEOUT,
    Call,
    Feed,
    Market,
    OrderWatcher,
    Timeline,
    Trader,
    Watch,
)
from tests.e2e.test_two_processes import create_user, login
from tests.support.graphql import execute
from tests.support.processes import ServerProcess
from tests.support.restartable import RestartablePostgres
from tests.support.servers import RedisProcess

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

COMMISSION_RATE = Decimal("0.0003")
# carol places MARKET orders only until Redis is back, so all of hers settle and
# her watcher can be checked before PostgreSQL goes away (a later clear end of
# the stream must not hide events lost silently while Redis was down).
TRADERS = ("alice", "bob", "carol")
# The one code that tells a client "not done, try again later".
FAILURE_CODES = {"SERVICE_UNAVAILABLE"}
OUTAGE_SECONDS = 4.0
SHOWN_PER_SECTION = 25


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "graphql_api.server.cli", *args],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=120,
    )


async def poll(check: Callable[[], Awaitable[bool]], timeout: float, every: float = 0.5) -> bool:
    """Whether ``check`` came true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)


async def snapshot_of(database: str, user_ids: list[int]) -> Snapshot:
    connection = await asyncpg.connect(dsn(database))
    try:
        return await read_snapshot(connection, user_ids)
    finally:
        await connection.close()


async def open_market_orders(database: str, user_ids: list[int]) -> list[str]:
    snapshot = await snapshot_of(database, user_ids)
    return [
        f"{row['id']} ({row['client_order_id']}, {row['status']})"
        for row in snapshot.orders
        if row["type"] == "MARKET" and row["status"] in ("NEW", "PARTIALLY_FILLED")
    ]


async def all_ready(servers: list[ServerProcess]) -> bool:
    async with httpx.AsyncClient(timeout=3) as http:
        for server in servers:
            try:
                if (await http.get(f"{server.http}/readyz")).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
    return True


async def watch_matches(
    watch: Watch, database: str, user_id: int, problems: list[str] | None = None
) -> bool:
    found = watched_versus_stored(watch, await snapshot_of(database, [user_id]), user_id)
    if problems is not None:
        problems[:] = found
    return not found


def answers_problems(calls: list[Call]) -> list[str]:
    problems = []
    for call in calls:
        if call.answer.outcome == "no answer":
            problems.append(f"{call.describe(short=True)} -- a call must get an answer")
        elif call.answer.outcome == "failed" and set(call.answer.codes) - FAILURE_CODES:
            problems.append(
                f"{call.describe(short=True)} -- a failure must say SERVICE_UNAVAILABLE"
            )
    return problems


def coverage_problems(calls: list[Call], snapshot: Snapshot) -> list[str]:
    """The run really exercised what the audit checks."""
    problems = []
    by_phase = Counter(phase for call in calls for phase in call.phase.split(" -> "))
    for phase in ("healthy", "redis down", "redis back", "postgres down", "postgres back"):
        if by_phase[phase] == 0:
            problems.append(f"no call was made during '{phase}'")
    if not snapshot.trades:
        problems.append("no order was filled: the fill and account audits checked nothing")
    if not any(c.kind == "cancelOrder" and c.answer.outcome == "ok" for c in calls):
        problems.append("no cancel was answered: the cancel audit checked nothing")
    return problems


def summary(calls: list[Call]) -> str:
    counts = Counter((c.phase, c.kind, c.answer.outcome, c.answer.codes) for c in calls)
    lines = [
        f"  {phase:40} {kind:12} {outcome:9} {list(codes) if codes else ''}: {n}"
        for (phase, kind, outcome, codes), n in sorted(counts.items())
    ]
    return "calls by phase, kind and answer:\n" + "\n".join(lines)


def report(sections: dict[str, list[str]], calls: list[Call]) -> str:
    parts = []
    for title, problems in sections.items():
        if not problems:
            continue
        shown = problems[:SHOWN_PER_SECTION]
        more = len(problems) - len(shown)
        parts.append(
            f"== {title}: {len(problems)} mismatch(es)\n"
            + "\n".join(f"  - {line}" for line in shown)
            + (f"\n  ... and {more} more" if more else "")
        )
    return "\n".join(parts) + "\n" + summary(calls)


async def test_what_clients_were_told_is_what_was_stored_through_redis_and_postgres_restarts() -> (
    None
):
    redis = RedisProcess()
    with RestartablePostgres() as postgres:
        redis.start()
        try:
            await _scenario(postgres, redis)
        finally:
            await asyncio.to_thread(redis.stop)


async def _scenario(postgres: RestartablePostgres, redis: RedisProcess) -> None:
    env = {
        "DATABASE_URL": postgres.url,
        "BROADCAST_URL": redis.url,
        "MARKET_FEED": "none",
        "LEADER_LEASE_SECONDS": "2",
        "TICK_FLUSH_INTERVAL_MS": "5",
        # Smaller than a call's batch of ticks: one call spans several writes, and
        # must still be stored whole or not at all.
        "TICK_BATCH_SIZE": "2",
        "RATE_LIMIT": "false",
        "STRATEGY_ENGINE_ENABLED": "false",
        "BREAKER_FAILURE_THRESHOLD": "2",
        "BREAKER_RESET_SECONDS": "1",
        "DB_CONNECT_TIMEOUT_SECONDS": "2",
        "COMMISSION_RATE": str(COMMISSION_RATE),
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "warning",
    }
    # Schema and symbols first, so the processes start on a seeded database (and
    # do not race to seed it) and new traders get cash in every quote currency.
    await asyncio.to_thread(cli, env, "seed")
    servers = [ServerProcess(env) for _ in range(2)]
    clients: list[httpx.AsyncClient] = []
    try:
        started = await asyncio.gather(
            *(asyncio.to_thread(server.start, 120) for server in servers),
            asyncio.to_thread(create_user, env, "feeder", "FEED"),
            return_exceptions=True,
        )
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        processes = dict(zip("AB", servers, strict=True))

        def http_clients(token: str) -> dict[str, httpx.AsyncClient]:
            by_process = {
                name: httpx.AsyncClient(
                    base_url=server.http,
                    timeout=CALL_TIMEOUT + 5,
                    headers={"authorization": f"Bearer {token}"},
                )
                for name, server in processes.items()
            }
            clients.extend(by_process.values())
            return by_process

        async with httpx.AsyncClient(base_url=servers[0].http, timeout=30) as http:
            feeder = http_clients(await login(http, "feeder"))
            tokens = {name: await register(http, name) for name in TRADERS}
        user_ids, start_cash = await accounts_of(postgres.url, TRADERS)
        problems, calls = await _run(
            processes,
            feeder,
            {name: (http_clients(token), token) for name, token in tokens.items()},
            postgres,
            redis,
            user_ids,
            start_cash,
        )
        if any(problems.values()):
            for name, server in processes.items():
                print(f"--- process {name} log (tail) ---\n{server.output()}")
    finally:
        for http in clients:
            await http.aclose()
        for server in servers:
            await asyncio.to_thread(server.stop)
            server.log_path.unlink(missing_ok=True)
    if any(problems.values()):
        pytest.fail(report(problems, calls), pytrace=False)


async def register(http: httpx.AsyncClient, username: str) -> str:
    """A new TRADER (with the start cash), through the API; its access token."""
    data = await execute(
        http,
        "mutation ($u: String!, $p: String!) { register(username: $u, password: $p) "
        "{ tokens { accessToken } userErrors { code message } } }",
        {"u": username, "p": "a-good-password"},
    )
    payload = data["register"]
    assert payload["tokens"] is not None, payload
    token: str = payload["tokens"]["accessToken"]
    return token


async def accounts_of(
    database: str, usernames: tuple[str, ...]
) -> tuple[dict[str, int], dict[int, Decimal]]:
    """Each user's id, and the cash each starts with."""
    connection = await asyncpg.connect(dsn(database))
    try:
        rows = await connection.fetch(
            "SELECT u.id, u.username, c.amount FROM users u JOIN cash_balances c"
            " ON c.user_id = u.id AND c.currency = $1 WHERE u.username = ANY($2::text[])",
            CURRENCY,
            list(usernames),
        )
    finally:
        await connection.close()
    user_ids = {row["username"]: row["id"] for row in rows}
    assert sorted(user_ids) == sorted(usernames), f"no {CURRENCY} account: {rows}"
    return user_ids, {row["id"]: row["amount"] for row in rows}


async def _run(
    processes: dict[str, ServerProcess],
    feeder: dict[str, httpx.AsyncClient],
    traders_clients: dict[str, tuple[dict[str, httpx.AsyncClient], str]],
    postgres: RestartablePostgres,
    redis: RedisProcess,
    user_ids: dict[str, int],
    start_cash: dict[int, Decimal],
) -> tuple[dict[str, list[str]], list[Call]]:
    database = postgres.url
    timeline = Timeline()
    market = Market(Decimal("2.1500"))
    feed = Feed(feeder, timeline, market, seed=7)
    traders: dict[str, Trader] = {}
    watchers: dict[str, OrderWatcher] = {}
    for seed, name in enumerate(TRADERS):
        trader_clients, token = traders_clients[name]
        traders[name] = Trader(
            name, trader_clients, timeline, market, seed=seed, market_only=name == "carol"
        )
        process = "A" if name == "alice" else "B"
        watchers[name] = OrderWatcher(
            Watch(f"{name}'s orderUpdates on {process}"),
            processes[process].ws,
            trader_clients[process],
            token,
            lambda: timeline.phase,
        )

    # given a quote for MARKET orders, and a subscription per trader
    first = await feed.ingest("A", move=False)
    assert first.answer.outcome == "ok", first.describe()
    watching = {name: asyncio.create_task(w.run()) for name, w in watchers.items()}
    subscribed = await poll(
        lambda: _true(all(w.watch.subscriptions for w in watchers.values())), 15, 0.1
    )
    assert subscribed, {name: w.watch.refused_attempts for name, w in watchers.items()}
    await asyncio.sleep(2)  # each watcher's catch-up reads are done

    stop, stop_carol = asyncio.Event(), asyncio.Event()
    traffic = [
        asyncio.create_task(
            t.run(stop_carol if name == "carol" else stop, max_calls=400, pause=0.15)
        )
        for name, t in traders.items()
    ]
    # Two feed connections calling the same process at once: their ticks share
    # write batches, and each call must still be stored whole or not at all.
    traffic += [
        asyncio.create_task(feed.run(stop, max_calls=400, pause=0.25)) for _lane in range(2)
    ]
    carol_problems: list[str] = []
    settle_problems: list[str] = []
    try:
        # when Redis goes away under steady traffic, and comes back
        await asyncio.sleep(3)
        timeline.phase = "redis down"
        await asyncio.to_thread(redis.stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        timeline.phase = "redis restarting"
        await asyncio.to_thread(redis.start)
        timeline.phase = "redis back"
        stop_carol.set()
        await traffic[list(traders).index("carol")]
        # carol's MARKET orders all settle once ticks reach the matcher again; then
        # her client's view must equal what is stored
        stuck = await _wait_for_no_open_market_orders(database, [user_ids["carol"]], 15)
        if stuck:
            settle_problems.append(
                f"carol's MARKET orders never settled after Redis returned: {stuck}"
            )
        await poll(
            functools.partial(
                watch_matches, watchers["carol"].watch, database, user_ids["carol"], carol_problems
            ),
            8,
        )
        carol_watching = watching.pop("carol")
        carol_watching.cancel()
        await asyncio.gather(carol_watching, return_exceptions=True)
        await asyncio.sleep(2)

        # when PostgreSQL goes away under steady traffic, and comes back
        timeline.phase = "postgres down"
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        timeline.phase = "postgres restarting"
        await asyncio.to_thread(postgres.start)
        timeline.phase = "postgres back"
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        stop.set()
        stop_carol.set()
        await asyncio.gather(*traffic)

    # then, once the cluster has settled…
    timeline.phase = "settling"
    if not await poll(lambda: all_ready(list(processes.values())), 30):
        settle_problems.append("a process was still not ready 30 s after the faults")
    stuck = await _settle_market_orders(feed, database, list(user_ids.values()), 25)
    if stuck:
        settle_problems.append(f"MARKET orders still open after settling: {stuck}")
    subscription_problems: dict[str, list[str]] = {"alice": [], "bob": []}
    await asyncio.gather(
        *(
            poll(
                functools.partial(
                    watch_matches, watchers[name].watch, database, user_ids[name], found
                ),
                15,
            )
            for name, found in subscription_problems.items()
        )
    )
    for task in watching.values():
        task.cancel()
    await asyncio.gather(*watching.values(), return_exceptions=True)

    # …what every client was told is what the database holds
    snapshot = await snapshot_of(database, list(user_ids.values()))
    calls = timeline.calls
    watch_problems = carol_problems + subscription_problems["alice"] + subscription_problems["bob"]
    for watcher in watchers.values():
        watch_problems += [f"{watcher.watch.name}: {line}" for line in watcher.watch.problems]
    sections = {
        "told versus stored": told_versus_stored(calls, snapshot, user_ids),
        "fills versus orders": fills_versus_orders(calls, snapshot),
        "cash and positions versus trades": accounts_versus_trades(
            snapshot, user_ids, start_cash, COMMISSION_RATE
        ),
        "subscriptions versus stored orders": watch_problems,
        "answers": answers_problems(calls),
        "settling": settle_problems,
        "coverage": coverage_problems(calls, snapshot),
    }
    return sections, calls


async def _true(value: bool) -> bool:
    return value


async def _wait_for_no_open_market_orders(
    database: str, user_ids: list[int], timeout: float
) -> list[str]:
    """Open MARKET orders left after ``timeout`` (traffic keeps ticks coming meanwhile)."""
    left: list[str] = []

    async def none_open() -> bool:
        try:
            left[:] = await open_market_orders(database, user_ids)
        except (OSError, asyncpg.PostgresError) as error:
            left[:] = [f"database not readable: {error}"]
        return not left

    await poll(none_open, timeout)
    return left


async def _settle_market_orders(
    feed: Feed, database: str, user_ids: list[int], timeout: float
) -> list[str]:
    """Send a steady tick each second until no MARKET order is open; what stays open."""
    left: list[str] = []
    processes = sorted(feed.clients)
    sent = 0

    async def none_open() -> bool:
        nonlocal sent
        left[:] = await open_market_orders(database, user_ids)
        if left:
            await feed.ingest(processes[sent % len(processes)], move=False)
            sent += 1
        return not left

    await poll(none_open, timeout, every=1.0)
    return left
