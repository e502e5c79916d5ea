"""Clients for the cluster fault test that write down what every call was told.

A :class:`Call` is one mutation and the answer its client got: success (the
payload), failure (the error codes, e.g. ``SERVICE_UNAVAILABLE``) or no answer at
all (a timeout or a broken connection). The audit in :mod:`tests.e2e.cluster_audit`
then holds the database to those answers.

Traders place LIMIT and MARKET orders with unique clientOrderIds and cancel some of
their open ones; the feed ingests batches of ticks with current timestamps; an
:class:`OrderWatcher` holds an ``orderUpdates`` subscription and keeps the view a
real client would keep (subscribe, then read its orders to catch up; on a clear
``SERVICE_UNAVAILABLE`` end, subscribe again and catch up again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

Json = dict[str, Any]
Outcome = Literal["ok", "failed", "no answer"]

SYMBOL = "XRPUSDT"
TICK = Decimal("0.0001")
# An answer later than this is no answer: the servers bound their own waits
# (connect timeout, breakers) well below it.
CALL_TIMEOUT = 15.0

PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order { id clientOrderId status filledQuantity }
    userErrors { field code message }
  }
}
"""
CANCEL = """
mutation ($id: ID!) {
  cancelOrder(id: $id) {
    order { id status filledQuantity }
    userErrors { field code message }
  }
}
"""
INGEST = """
mutation ($ticks: [TickInput!]!) {
  ingestTicks(ticks: $ticks) { accepted userErrors { field code message } }
}
"""
ORDER_FIELDS = "id clientOrderId status filledQuantity updatedAt"
ORDER_UPDATES = f"subscription {{ orderUpdates {{ {ORDER_FIELDS} }} }}"
MY_ORDERS = f"""
query ($after: String) {{
  orders(first: 100, after: $after) {{
    edges {{ node {{ {ORDER_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    payload: Json | None = None
    codes: tuple[str, ...] = ()
    text: str = ""


@dataclass(slots=True)
class Call:
    """One mutation as its client saw it."""

    number: int
    kind: Literal["placeOrder", "cancelOrder", "ingestTicks"]
    user: str
    process: str
    phase: str
    request: Json
    answer: Answer = Answer("no answer", text="not sent")

    def describe(self, *, short: bool = False) -> str:
        """One line saying what was asked and what the client was told."""
        told = {
            "ok": f"told ok {json.dumps(self.answer.payload, sort_keys=True)}",
            "failed": f"told failed {list(self.answer.codes)} ({self.answer.text})",
            "no answer": f"got no answer ({self.answer.text})",
        }[self.answer.outcome]
        return (
            f"call #{self.number} {self.kind} by {self.user} on process {self.process} "
            f"during '{self.phase}'"
            + ("" if short else f" {json.dumps(self.request, sort_keys=True)}")
            + f": {told}"
        )


class Timeline:
    """The current phase of the scenario, written into every call and subscription end."""

    def __init__(self) -> None:
        self.phase = "healthy"
        self.calls: list[Call] = []

    def new_call(
        self,
        kind: Literal["placeOrder", "cancelOrder", "ingestTicks"],
        user: str,
        process: str,
        request: Json,
    ) -> Call:
        call = Call(len(self.calls) + 1, kind, user, process, self.phase, request)
        self.calls.append(call)
        return call

    def answered(self, call: Call, answer: Answer) -> None:
        """Record the answer; a call that spanned a change of phase names both."""
        call.answer = answer
        if self.phase != call.phase:
            call.phase = f"{call.phase} -> {self.phase}"


async def send(http: httpx.AsyncClient, query: str, variables: Json, field_name: str) -> Answer:
    """Post one operation; what the client was told, classified."""
    try:
        response = await asyncio.wait_for(
            http.post("/graphql", json={"query": query, "variables": variables}), CALL_TIMEOUT
        )
    except (httpx.HTTPError, TimeoutError) as error:
        return Answer("no answer", text=f"{type(error).__name__}: {error}")
    try:
        body = response.json()
    except ValueError:
        return Answer("failed", codes=(f"HTTP {response.status_code}",), text=response.text[:200])
    errors = body.get("errors") or []
    codes = tuple(str((e.get("extensions") or {}).get("code")) for e in errors)
    payload = (body.get("data") or {}).get(field_name)
    if payload is None:
        messages = "; ".join(str(e.get("message")) for e in errors) or response.text[:200]
        return Answer("failed", codes=codes or (f"HTTP {response.status_code}",), text=messages)
    return Answer("ok", payload=payload, codes=codes)


def user_errors(answer: Answer) -> list[Json]:
    if answer.payload is None:
        return []
    found: list[Json] = answer.payload.get("userErrors") or []
    return found


class Market:
    """The feed's current price, which traders quote around."""

    def __init__(self, last: Decimal) -> None:
        self.last = last


class Trader:
    """Places and cancels orders through both processes, one call at a time.

    Parameters:
        name: the username (and the clientOrderId prefix).
        clients: one signed-in HTTP client per process, keyed by process name.
        market: where the current price is read.
        seed: makes the sequence of orders repeatable.
        market_only: place only MARKET orders (so the trader's orders all settle).
    """

    def __init__(
        self,
        name: str,
        clients: dict[str, httpx.AsyncClient],
        timeline: Timeline,
        market: Market,
        *,
        seed: int,
        market_only: bool = False,
    ) -> None:
        self.name = name
        self.clients = clients
        self.timeline = timeline
        self.market = market
        self.random = random.Random(seed)
        self.market_only = market_only
        self.open_ids: list[str] = []
        self.placed = 0

    async def run(self, stop: asyncio.Event, *, max_calls: int, pause: float) -> None:
        processes = sorted(self.clients)
        for n in range(max_calls):
            if stop.is_set():
                return
            process = processes[n % len(processes)]
            if self.open_ids and not self.market_only and self.random.random() < 0.2:
                await self.cancel(
                    process, self.open_ids.pop(self.random.randrange(len(self.open_ids)))
                )
            else:
                await self.place(process)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    def next_order(self) -> Json:
        self.placed += 1
        side = self.random.choice(["BUY", "BUY", "SELL"])
        quantity = Decimal(10 * self.random.randint(1, 5)).quantize(Decimal("0.1"))
        order: Json = {
            "symbol": SYMBOL,
            "side": side,
            "quantity": str(quantity),
            "clientOrderId": f"{self.name}-{self.placed:04d}",
        }
        if self.market_only or self.random.random() < 0.3:
            order["type"] = "MARKET"
        else:
            # Around the current price: some cross on the next tick, some rest.
            offset = TICK * 5 * self.random.randint(-2, 6)
            price = self.market.last - offset if side == "BUY" else self.market.last + offset
            order["type"] = "LIMIT"
            order["limitPrice"] = str(price.quantize(TICK))
        return order

    async def place(self, process: str) -> None:
        request = self.next_order()
        call = self.timeline.new_call("placeOrder", self.name, process, request)
        self.timeline.answered(
            call, await send(self.clients[process], PLACE, {"input": request}, "placeOrder")
        )
        order = (call.answer.payload or {}).get("order")
        if order is not None and order["status"] in ("NEW", "PARTIALLY_FILLED"):
            self.open_ids.append(str(order["id"]))

    async def cancel(self, process: str, order_id: str) -> None:
        call = self.timeline.new_call("cancelOrder", self.name, process, {"id": order_id})
        self.timeline.answered(
            call, await send(self.clients[process], CANCEL, {"id": order_id}, "cancelOrder")
        )


class Feed:
    """Ingests small batches of ticks with current timestamps through both processes.

    Every tick carries a unique volume (its serial number), so the audit can find
    each one in the tick table; prices walk within the symbol's price band.
    """

    def __init__(
        self,
        clients: dict[str, httpx.AsyncClient],
        timeline: Timeline,
        market: Market,
        *,
        seed: int,
        per_call: int = 3,
    ) -> None:
        self.clients = clients
        self.timeline = timeline
        self.market = market
        self.random = random.Random(seed)
        self.per_call = per_call
        self.serial = 0

    def batch(self, *, move: bool = True) -> list[Json]:
        now = datetime.now(UTC)
        ticks = []
        for index in range(self.per_call):
            if move:
                step = TICK * 5 * self.random.randint(-2, 2)
                self.market.last = min(
                    max(self.market.last + step, Decimal("2.1000")), Decimal("2.2000")
                )
            self.serial += 1
            last = self.market.last
            ticks.append(
                {
                    "symbol": SYMBOL,
                    # Distinct, current and never ahead of the server clock.
                    "time": (now - timedelta(milliseconds=self.per_call - index)).isoformat(),
                    "last": str(last),
                    "bid": str(last - TICK if move else last),
                    "ask": str(last + TICK if move else last),
                    "volume": str(self.serial),
                }
            )
        return ticks

    async def ingest(self, process: str, *, move: bool = True) -> Call:
        ticks = self.batch(move=move)
        call = self.timeline.new_call("ingestTicks", "feeder", process, {"ticks": ticks})
        self.timeline.answered(
            call, await send(self.clients[process], INGEST, {"ticks": ticks}, "ingestTicks")
        )
        return call

    async def run(self, stop: asyncio.Event, *, max_calls: int, pause: float) -> None:
        processes = sorted(self.clients)
        for n in range(max_calls):
            if stop.is_set():
                return
            await self.ingest(processes[n % len(processes)])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)


STATUS_RANK = {
    "NEW": 0,
    "PARTIALLY_FILLED": 1,
    "FILLED": 2,
    "CANCELED": 2,
    "EXPIRED": 2,
    "REJECTED": 2,
}


@dataclass(frozen=True, slots=True)
class Seen:
    """An order as the watching client last saw it."""

    status: str
    filled: Decimal
    updated_at: datetime

    @classmethod
    def of(cls, node: Json) -> Seen:
        return cls(
            node["status"],
            Decimal(node["filledQuantity"]),
            datetime.fromisoformat(node["updatedAt"]),
        )

    def newer_than(self, other: Seen) -> bool:
        # An order only moves forward: later update, more filled, a final status.
        mine = (self.updated_at, self.filled, STATUS_RANK[self.status])
        theirs = (other.updated_at, other.filled, STATUS_RANK[other.status])
        return mine > theirs

    def __str__(self) -> str:
        return f"{self.status} filled {self.filled} (updated {self.updated_at.isoformat()})"


@dataclass(slots=True)
class Watch:
    """What one watcher saw, for the audit."""

    name: str
    view: dict[int, Seen] = field(default_factory=dict)
    # Every end of an established subscription: "<how> during '<phase>'".
    endings: list[str] = field(default_factory=list)
    # Ends that a client cannot tell from a healthy stream, or that carry no clear code.
    problems: list[str] = field(default_factory=list)
    events: int = 0
    subscriptions: int = 0
    # Attempts to (re)subscribe that the server refused (e.g. while a dependency is down).
    refused_attempts: list[str] = field(default_factory=list)


class OrderWatcher:
    """Holds ``orderUpdates`` for one user on one process, as a careful client would.

    Each subscription is followed by reading the user's orders (twice: at once and
    a moment later, so a change that raced the subscription's start is still read),
    and every event and read is merged into :attr:`watch.view` keeping the newest
    state per order. A subscription that ends with ``SERVICE_UNAVAILABLE`` is
    renewed (and caught up); any other end is written down as a problem and
    renewed too, so the rest of the run is still watched.
    """

    def __init__(
        self,
        watch: Watch,
        ws_url: str,
        http: httpx.AsyncClient,
        token: str,
        phase: Callable[[], str],
    ) -> None:
        self.watch = watch
        self.ws_url = ws_url
        self.http = http
        self.token = token
        self.phase = phase

    def merge(self, node: Json) -> None:
        order_id = int(node["id"])
        seen = Seen.of(node)
        known = self.watch.view.get(order_id)
        if known is None or seen.newer_than(known):
            self.watch.view[order_id] = seen

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            try:
                await self._subscribe_once()
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as error:
                self.watch.refused_attempts.append(
                    f"{type(error).__name__}: {error} during '{self.phase()}'"
                )
            await asyncio.sleep(0.3)

    async def _subscribe_once(self) -> None:
        async with connect(
            self.ws_url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            open_timeout=5,
        ) as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "connection_init",
                        "payload": {"authorization": f"Bearer {self.token}"},
                    }
                )
            )
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if ack.get("type") != "connection_ack":
                self.watch.refused_attempts.append(f"init answered {ack} during '{self.phase()}'")
                return
            self.watch.subscriptions += 1
            op_id = str(self.watch.subscriptions)
            await ws.send(
                json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": ORDER_UPDATES}})
            )
            catching_up = asyncio.create_task(self._catch_up())
            try:
                ending = await self._read(ws, op_id)
            finally:
                catching_up.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await catching_up
            self.watch.endings.append(f"{ending} during '{self.phase()}'")

    async def _read(self, ws: Any, op_id: str) -> str:
        """Until the subscription ends; how it ended."""
        try:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                if kind == "pong" or message.get("id") != op_id:
                    continue
                if kind == "next":
                    payload = message.get("payload") or {}
                    if payload.get("errors"):
                        return self._ended_by(payload["errors"], "next with errors")
                    self.watch.events += 1
                    self.merge(payload["data"]["orderUpdates"])
                elif kind == "error":
                    errors = message.get("payload") or []
                    return self._ended_by(errors if isinstance(errors, list) else [errors], "error")
                elif kind == "complete":
                    ending = "complete without an error (a silent end)"
                    self.watch.problems.append(f"{ending} during '{self.phase()}'")
                    return ending
        except ConnectionClosed as closed:
            ending = f"socket closed ({closed})"
        else:
            ending = f"socket closed ({ws.close_code} {ws.close_reason!r})"
        self.watch.problems.append(f"subscription ended by {ending} during '{self.phase()}'")
        return ending

    def _ended_by(self, errors: list[Json], how: str) -> str:
        codes = [str((e.get("extensions") or {}).get("code")) for e in errors]
        ending = f"{how} {codes}: {'; '.join(str(e.get('message')) for e in errors)}"
        if codes != ["SERVICE_UNAVAILABLE"]:
            self.watch.problems.append(
                f"subscription ended by {ending} (not a clear SERVICE_UNAVAILABLE) "
                f"during '{self.phase()}'"
            )
        return ending

    async def _catch_up(self) -> None:
        for delay in (0.0, 1.5):
            await asyncio.sleep(delay)
            read = await self._read_orders()
            while not read:  # the database may be down: keep trying until it answers
                await asyncio.sleep(0.5)
                read = await self._read_orders()

    async def _read_orders(self) -> bool:
        after: str | None = None
        while True:
            answer = await send(self.http, MY_ORDERS, {"after": after}, "orders")
            if answer.outcome != "ok" or answer.codes:
                return False
            assert answer.payload is not None
            for edge in answer.payload["edges"]:
                self.merge(edge["node"])
            if not answer.payload["pageInfo"]["hasNextPage"]:
                return True
            after = answer.payload["pageInfo"]["endCursor"]
