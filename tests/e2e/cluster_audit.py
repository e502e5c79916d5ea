"""The database audit that ends the cluster fault test, read directly with asyncpg.

Each check returns the mismatches it found, one readable line each, naming the
call, order or tick concerned; an empty list means the check holds.

- :func:`told_versus_stored`: an answer is the truth. A call told it succeeded is
  stored exactly once; a call told it failed left nothing behind.
- :func:`fills_versus_orders`: every trade has its order, each order's filled
  quantity is the sum of its fills, a canceled order kept what it had at cancel.
- :func:`accounts_versus_trades`: cash and positions are what the trades imply,
  and open orders never reserve more than the account has.
- :func:`watched_versus_stored`: the order view a subscribing client built equals
  the stored orders.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg

from tests.e2e.cluster_traffic import SYMBOL, Call, Seen, Watch, user_errors

CURRENCY = "USDT"
CASH_UNIT = Decimal("0.00000001")  # USDT's minor unit (commissions are rounded to it)
OPEN = ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The stored state the audit reads, for the test's users."""

    orders: list[asyncpg.Record]
    trades: list[asyncpg.Record]
    cash: dict[int, Decimal]
    positions: dict[int, Decimal]
    tick_volumes: Counter[Decimal]

    @property
    def orders_by_id(self) -> dict[int, asyncpg.Record]:
        return {row["id"]: row for row in self.orders}


async def read_snapshot(connection: Any, user_ids: list[int]) -> Snapshot:
    orders = await connection.fetch(
        "SELECT id, user_id, client_order_id, symbol_code, side, type, quantity, limit_price,"
        " status, filled_quantity, reserve_price, reject_reason, version FROM orders"
        " WHERE user_id = ANY($1::bigint[]) ORDER BY id",
        user_ids,
    )
    trades = await connection.fetch(
        "SELECT t.id, t.order_id, t.user_id, t.symbol_code, t.side, t.quantity, t.price,"
        " t.commission FROM trades t WHERE t.user_id = ANY($1::bigint[])"
        " OR t.order_id IN (SELECT id FROM orders WHERE user_id = ANY($1::bigint[]))"
        " ORDER BY t.id",
        user_ids,
    )
    cash = await connection.fetch(
        "SELECT user_id, amount FROM cash_balances WHERE currency = $1"
        " AND user_id = ANY($2::bigint[])",
        CURRENCY,
        user_ids,
    )
    positions = await connection.fetch(
        "SELECT user_id, quantity FROM positions WHERE symbol_code = $1"
        " AND user_id = ANY($2::bigint[])",
        SYMBOL,
        user_ids,
    )
    volumes = await connection.fetch("SELECT volume FROM ticks WHERE symbol = $1", SYMBOL)
    return Snapshot(
        orders=list(orders),
        trades=list(trades),
        cash={row["user_id"]: row["amount"] for row in cash},
        positions={row["user_id"]: row["quantity"] for row in positions},
        tick_volumes=Counter(Decimal(row["volume"]) for row in volumes),
    )


def told_versus_stored(
    calls: list[Call], snapshot: Snapshot, user_ids: dict[str, int]
) -> list[str]:
    problems: list[str] = []
    stored = {(row["user_id"], row["client_order_id"]): row for row in snapshot.orders}
    fills = Counter(trade["order_id"] for trade in snapshot.trades)
    placed_keys: set[tuple[int, str]] = set()
    for call in calls:
        if call.kind == "placeOrder":
            key = (user_ids[call.user], str(call.request["clientOrderId"]))
            placed_keys.add(key)
            problems += _placement(call, stored.get(key), fills)
        elif call.kind == "cancelOrder":
            problems += _cancel(call, snapshot.orders_by_id.get(int(call.request["id"])))
        else:
            problems += _ingest(call, snapshot.tick_volumes)
    for key, row in stored.items():
        if key not in placed_keys:
            problems.append(
                f"order {row['id']} (clientOrderId {row['client_order_id']}) is stored "
                "but no call placed it"
            )
    return problems


def _placement(call: Call, row: asyncpg.Record | None, fills: Counter[int]) -> list[str]:
    answer = call.answer
    order = (answer.payload or {}).get("order")
    if answer.outcome == "no answer":
        return []  # the client cannot know; reported with the unanswered calls
    if order is None:  # told failed (error codes) or refused (userErrors): nothing stored
        if row is not None:
            return [
                f"{call.describe()} -- but it is stored as order {row['id']} ({row['status']}, "
                f"filled {row['filled_quantity']}, {fills[row['id']]} fill(s))"
            ]
        return []
    if row is None:
        return [f"{call.describe()} -- but no order with that clientOrderId is stored"]
    problems = []
    if int(order["id"]) != row["id"]:
        problems.append(f"{call.describe()} -- but the stored order has id {row['id']}")
    if (order["status"] == "REJECTED") != (row["status"] == "REJECTED"):
        problems.append(f"{call.describe()} -- but the stored order is {row['status']}")
    request = call.request
    stored_input = (
        row["side"],
        row["type"],
        row["quantity"],
        row["limit_price"],
    )
    asked = (
        request["side"],
        request["type"],
        Decimal(request["quantity"]),
        Decimal(request["limitPrice"]) if "limitPrice" in request else None,
    )
    if stored_input != asked:
        problems.append(f"{call.describe()} -- but the stored order is {stored_input}")
    return problems


def _cancel(call: Call, row: asyncpg.Record | None) -> list[str]:
    answer = call.answer
    if answer.outcome == "no answer":
        return []
    if row is None:
        return [f"{call.describe()} -- but that order is not stored at all"]
    # Each order is canceled at most once and only by its owner; the matcher's own
    # cancels (funds, position) carry a reject reason.
    canceled_by_user = row["status"] == "CANCELED" and row["reject_reason"] is None
    told_canceled = answer.outcome == "ok" and not user_errors(answer)
    if told_canceled:
        told = answer.payload["order"] if answer.payload else None
        if not canceled_by_user:
            return [f"{call.describe()} -- but the order is stored as {row['status']}"]
        if told is not None and Decimal(told["filledQuantity"]) != row["filled_quantity"]:
            return [
                f"{call.describe()} -- but the canceled order has filled "
                f"{row['filled_quantity']} (fills after the cancel)"
            ]
        return []
    if canceled_by_user:
        return [f"{call.describe()} -- but the order is stored as CANCELED"]
    return []


def _ingest(call: Call, volumes: Counter[Decimal]) -> list[str]:
    answer = call.answer
    if answer.outcome == "no answer":
        return []
    ticks = call.request["ticks"]
    found = [volumes[Decimal(tick["volume"])] for tick in ticks]
    told_stored = (
        answer.outcome == "ok"
        and not user_errors(answer)
        and answer.payload is not None
        and answer.payload.get("accepted") == len(ticks)
    )
    serials = [tick["volume"] for tick in ticks]
    if told_stored and found != [1] * len(ticks):
        return [
            f"{call.describe(short=True)} -- but of its ticks (volumes {serials}) the tick "
            f"table holds {found} copies"
        ]
    if not told_stored and any(found):
        return [
            f"{call.describe(short=True)} -- but of its ticks (volumes {serials}) the tick "
            f"table holds {found} copies"
        ]
    return []


def fills_versus_orders(calls: list[Call], snapshot: Snapshot) -> list[str]:
    problems: list[str] = []
    orders = snapshot.orders_by_id
    traded: defaultdict[int, Decimal] = defaultdict(Decimal)
    for trade in snapshot.trades:
        order = orders.get(trade["order_id"])
        if order is None:
            problems.append(f"trade {trade['id']} fills order {trade['order_id']}, not stored")
            continue
        traded[order["id"]] += trade["quantity"]
        same = (order["user_id"], order["symbol_code"], order["side"])
        if (trade["user_id"], trade["symbol_code"], trade["side"]) != same:
            problems.append(
                f"trade {trade['id']} ({trade['user_id']}, {trade['symbol_code']}, "
                f"{trade['side']}) does not match its order {order['id']} {same}"
            )
        if order["type"] == "LIMIT":
            limit = order["limit_price"]
            worse = trade["price"] > limit if order["side"] == "BUY" else trade["price"] < limit
            if worse:
                problems.append(
                    f"trade {trade['id']} at {trade['price']} is worse than order "
                    f"{order['id']}'s limit {limit}"
                )
    for order in snapshot.orders:
        filled, summed = order["filled_quantity"], traded[order["id"]]
        if filled != summed:
            problems.append(
                f"order {order['id']} ({order['client_order_id']}, {order['status']}) has "
                f"filled_quantity {filled} but its trades sum to {summed}"
            )
        if filled > order["quantity"]:
            problems.append(
                f"order {order['id']} ({order['client_order_id']}) filled {filled} of "
                f"{order['quantity']}"
            )
        if order["status"] == "FILLED" and filled != order["quantity"]:
            problems.append(
                f"order {order['id']} ({order['client_order_id']}) is FILLED with "
                f"{filled} of {order['quantity']}"
            )
    return problems


def accounts_versus_trades(
    snapshot: Snapshot,
    user_ids: dict[str, int],
    start_cash: dict[int, Decimal],
    commission_rate: Decimal,
) -> list[str]:
    problems: list[str] = []
    cash = dict(start_cash)
    held: defaultdict[int, Decimal] = defaultdict(Decimal)
    for trade in snapshot.trades:
        notional = trade["quantity"] * trade["price"]
        commission = (notional * commission_rate).quantize(CASH_UNIT, rounding=ROUND_HALF_UP)
        if trade["commission"] != commission:
            problems.append(
                f"trade {trade['id']}: commission {trade['commission']}, "
                f"expected {commission} ({commission_rate} of {notional})"
            )
        user = trade["user_id"]
        if trade["side"] == "BUY":
            cash[user] -= notional + trade["commission"]
            held[user] += trade["quantity"]
        else:
            cash[user] += notional - trade["commission"]
            held[user] -= trade["quantity"]
    for name, user in sorted(user_ids.items()):
        stored_cash = snapshot.cash.get(user)
        if stored_cash != cash[user]:
            problems.append(
                f"{name}: cash is {stored_cash} {CURRENCY}, the trades imply {cash[user]} "
                f"(start {start_cash[user]})"
            )
        stored_position = snapshot.positions.get(user, Decimal(0))
        if stored_position != held[user]:
            problems.append(
                f"{name}: {SYMBOL} position is {stored_position}, the trades imply {held[user]}"
            )
        problems += _reservations(name, user, snapshot, commission_rate)
    return problems


def _reservations(name: str, user: int, snapshot: Snapshot, commission_rate: Decimal) -> list[str]:
    problems = []
    reserved_cash = Decimal(0)
    reserved_sell = Decimal(0)
    for order in snapshot.orders:
        if order["user_id"] != user or order["status"] not in OPEN:
            continue
        remaining = order["quantity"] - order["filled_quantity"]
        if order["side"] == "BUY":
            if order["reserve_price"] is None:
                problems.append(f"{name}: open BUY order {order['id']} reserves no cash")
                continue
            reserved_cash += remaining * order["reserve_price"] * (1 + commission_rate)
        else:
            reserved_sell += remaining
    cash = snapshot.cash.get(user, Decimal(0))
    if cash - reserved_cash < 0:
        problems.append(
            f"{name}: buying power is negative: cash {cash} - reserved by open buys {reserved_cash}"
        )
    position = snapshot.positions.get(user, Decimal(0))
    if position - reserved_sell < 0:
        problems.append(
            f"{name}: open sells reserve {reserved_sell} {SYMBOL} but the position is {position}"
        )
    return problems


def watched_versus_stored(watch: Watch, snapshot: Snapshot, user_id: int) -> list[str]:
    """The client's view equals the stored orders, field by field that it shows."""
    problems = []
    mine = [row for row in snapshot.orders if row["user_id"] == user_id]
    for row in mine:
        seen: Seen | None = watch.view.get(row["id"])
        if seen is None or (seen.status, seen.filled) != (row["status"], row["filled_quantity"]):
            problems.append(
                f"{watch.name}: order {row['id']} ({row['client_order_id']}) is stored as "
                f"{row['status']} filled {row['filled_quantity']}, but the client last saw "
                f"{seen or 'nothing of it'}"
            )
    stored_ids = {row["id"] for row in mine}
    for order_id, seen in watch.view.items():
        if order_id not in stored_ids:
            problems.append(f"{watch.name}: was shown order {order_id} ({seen}), not stored")
    if problems:
        problems.append(
            f"{watch.name}: its subscriptions ({watch.subscriptions}) ended: "
            f"{watch.endings or 'never'}; {watch.events} events received; "
            f"{len(watch.refused_attempts)} attempts to subscribe refused"
        )
    return problems
