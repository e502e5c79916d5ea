"""A quantgraph client in Python with `gql`: a query, a mutation and a live subscription.

    pip install "gql[httpx,websockets]"
    python examples/python_client.py --url http://127.0.0.1:8000/graphql --ticks 3

It prints one JSON object per line, so scripts (and the test suite) can read it:

    {"event": "login", "username": "demo"}
    {"event": "symbols", "symbols": [{"code": "000001.SZ", ...}, ...]}
    {"event": "order", "order": {"id": "1", "status": "NEW", ...}, "userErrors": []}
    {"event": "tick", "tick": {"symbol": "BTCUSDT", "last": "95000.00", ...}}
    {"event": "done", "ticks": 3}

Queries and mutations go over HTTP; the subscription uses the
graphql-transport-ws protocol on the same path (``ws://`` / ``wss://``).

Market data is public; placing an order needs a signed-in user: the client logs
in with ``--username``/``--password`` (default: the demo user of a development
server) unless ``--token`` gives an access token; ``--anonymous`` skips both the
login and the order. The token travels as ``Authorization: Bearer`` over HTTP
and in the ``connection_init`` payload over the WebSocket.

The order is a LIMIT BUY of 100 600519.SH, 5% below the last price and on the
tick grid: inside the risk checks' price band, yet low enough to rest as NEW.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

Json = dict[str, Any]

LOGIN_MUTATION = """
mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) {
    tokens { accessToken }
    userErrors { field code message }
  }
}
"""

SYMBOLS_QUERY = """
query Symbols($first: Int!) {
  symbols(first: $first) {
    edges { node { code name exchange currency tickSize lotSize } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

REFERENCE_PRICE_QUERY = """
query ReferencePrice($code: String!) {
  symbol(code: $code) {
    code
    tickSize
    quote { last }
    dailyBars(limit: 1) { close }
  }
}
"""

PLACE_ORDER_MUTATION = """
mutation PlaceOrder($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order {
      id clientOrderId side type quantity limitPrice status rejectReason createdAt
      symbol { code }
    }
    userErrors { field code message }
  }
}
"""

TICKS_SUBSCRIPTION = """
subscription Ticks($symbols: [String!]!) {
  ticks(symbols: $symbols) { symbol time last bid ask volume }
}
"""

# How far below the reference price the example's resting BUY is placed. Risk
# checks refuse limit prices more than PRICE_BAND_PERCENT (default 10%) away
# from the last trade, so "far below" has to stay inside that band.
DISCOUNT = Decimal("0.95")
FALLBACK_LIMIT_PRICE = Decimal("1.00")


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def websocket_url(http_url: str) -> str:
    """``http://host/graphql`` -> ``ws://host/graphql`` (and https -> wss)."""
    parts = urlsplit(http_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme))


def below_market(reference: Decimal, tick_size: Decimal) -> Decimal:
    """``DISCOUNT`` x reference, rounded down onto the symbol's tick grid."""
    steps = (reference * DISCOUNT / tick_size).to_integral_value(rounding=ROUND_FLOOR)
    return max(steps, Decimal(1)) * tick_size


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class ClientError(Exception):
    """The server refused a request as data (userErrors)."""


async def login(session: AsyncClientSession, username: str, password: str) -> str:
    data = await session.execute(
        GraphQLRequest(LOGIN_MUTATION, variable_values={"username": username, "password": password})
    )
    payload: Json = data["login"]
    if payload["tokens"] is None:
        raise ClientError(f"login failed: {payload['userErrors']}")
    token: str = payload["tokens"]["accessToken"]
    return token


async def list_symbols(session: AsyncClientSession, first: int) -> list[Json]:
    data = await session.execute(GraphQLRequest(SYMBOLS_QUERY, variable_values={"first": first}))
    return [edge["node"] for edge in data["symbols"]["edges"]]


async def limit_price_for(session: AsyncClientSession, code: str) -> Decimal:
    data = await session.execute(
        GraphQLRequest(REFERENCE_PRICE_QUERY, variable_values={"code": code})
    )
    symbol: Json | None = data["symbol"]
    if symbol is None:
        return FALLBACK_LIMIT_PRICE
    if symbol["quote"] is not None:
        reference = Decimal(symbol["quote"]["last"])
    elif symbol["dailyBars"]:
        reference = Decimal(symbol["dailyBars"][-1]["close"])
    else:
        return FALLBACK_LIMIT_PRICE
    return below_market(reference, Decimal(symbol["tickSize"]))


async def place_limit_buy(
    session: AsyncClientSession, code: str, quantity: str, limit_price: Decimal
) -> Json:
    order_input = {
        "symbol": code,
        "side": "BUY",
        "type": "LIMIT",
        "quantity": quantity,
        "limitPrice": str(limit_price),
        "timeInForce": "GTC",
        # Idempotency key: resending this exact request returns the same order.
        "clientOrderId": f"example-{uuid.uuid4().hex[:16]}",
    }
    data = await session.execute(
        GraphQLRequest(PLACE_ORDER_MUTATION, variable_values={"input": order_input})
    )
    payload: Json = data["placeOrder"]
    return payload


async def stream_ticks(session: AsyncClientSession, symbols: list[str], count: int) -> int:
    received = 0
    request = GraphQLRequest(TICKS_SUBSCRIPTION, variable_values={"symbols": symbols})
    async for result in session.subscribe(request):
        emit("tick", tick=result["ticks"])
        received += 1
        if received >= count:
            break
    return received


async def run(args: argparse.Namespace) -> int:
    def http_client(token: str | None) -> Client:
        headers = auth_headers(token)
        return Client(transport=HTTPXAsyncTransport(url=args.url, headers=headers, timeout=10))

    token: str | None = args.token
    if token is None and not args.anonymous:
        async with http_client(None) as session:
            token = await login(session, args.username, args.password)
        emit("login", username=args.username)

    async with http_client(token) as session:
        symbols = await list_symbols(session, args.first)
        emit("symbols", symbols=symbols)
        if args.order_symbol and token is not None:
            price = args.limit_price or await limit_price_for(session, args.order_symbol)
            payload = await place_limit_buy(session, args.order_symbol, args.quantity, price)
            emit("order", order=payload["order"], userErrors=payload["userErrors"])

    received = 0
    if args.ticks > 0:
        ws = Client(
            transport=WebsocketsTransport(
                url=websocket_url(args.url),
                subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
                init_payload=auth_headers(token),
                connect_timeout=10,
            )
        )
        async with asyncio.timeout(args.timeout), ws as session:
            received = await stream_ticks(session, [args.symbol], args.ticks)
    emit("done", ticks=received)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/graphql", help="GraphQL HTTP URL")
    parser.add_argument("--ticks", type=int, default=3, help="live ticks to print, then exit")
    parser.add_argument("--symbol", default="BTCUSDT", help="symbol to subscribe to")
    parser.add_argument("--first", type=int, default=20, help="symbols to list")
    parser.add_argument(
        "--order-symbol", default="600519.SH", help="symbol of the LIMIT BUY ('' to skip)"
    )
    parser.add_argument("--quantity", default="100", help="order quantity (a lot multiple)")
    parser.add_argument(
        "--limit-price",
        type=Decimal,
        default=None,
        help="limit price; default: 5%% below the last price, on the tick grid",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("QUANTGRAPH_TOKEN"),
        help="access token (default: $QUANTGRAPH_TOKEN; else log in)",
    )
    parser.add_argument(
        "--anonymous", action="store_true", help="do not log in (and place no order)"
    )
    parser.add_argument(
        "--username",
        default=os.environ.get("QUANTGRAPH_USERNAME", "demo"),
        help="user to log in as (default: $QUANTGRAPH_USERNAME or demo)",
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("QUANTGRAPH_PASSWORD", "demo-password"),
        help="password (default: $QUANTGRAPH_PASSWORD or the development demo password)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the ticks")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except TimeoutError:
        print(f"timed out after {args.timeout}s waiting for ticks", file=sys.stderr)
    except (ClientError, TransportQueryError) as error:
        print(error, file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
