"""A local server that speaks Binance's documented spot formats: the combined market
stream over WebSocket (``/stream?streams=...``) and ``/api/v3/exchangeInfo`` over
HTTP, on one port. Each WebSocket connection runs the next script a test queued
(then stays open and silent), so a test can drop, stall or garble a connection."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

Script = Callable[[ServerConnection], Awaitable[None]]

EXCHANGE_INFO: dict[str, Any] = {
    "timezone": "UTC",
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "quoteAsset": "USDT",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01000000",
                    "maxPrice": "1000000.00000000",
                    "tickSize": "0.01000000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001000",
                    "maxQty": "9000.00000000",
                    "stepSize": "0.00001000",
                },
            ],
        }
    ],
}


def book_ticker(update: int, bid: str, ask: str, symbol: str = "BTCUSDT") -> str:
    data = {"u": update, "s": symbol, "b": bid, "B": "1.50000000", "a": ask, "A": "2.00000000"}
    return json.dumps({"stream": f"{symbol.lower()}@bookTicker", "data": data})


def trade(trade_id: int, price: str, quantity: str, millis: int, symbol: str = "BTCUSDT") -> str:
    data = {
        "e": "trade",
        "E": millis + 1,
        "s": symbol,
        "t": trade_id,
        "p": price,
        "q": quantity,
        "T": millis,
        "m": True,
        "M": True,
    }
    return json.dumps({"stream": f"{symbol.lower()}@trade", "data": data})


class FakeBinance:
    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.paths: list[str] = []
        self.info_queries: list[str] = []
        self.info_status = HTTPStatus.OK
        self.info_body: Any = EXCHANGE_INFO
        self.port = 0
        self.klines: list[list[Any]] = []
        self.kline_queries: list[dict[str, list[str]]] = []
        # answers given instead of klines, first to last: (status, Retry-After or None)
        self.kline_refusals: list[tuple[HTTPStatus, str | None]] = []

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/api/v3/klines"):
            return self._klines(connection, request)
        if not request.path.startswith("/api/v3/exchangeInfo"):
            return None
        self.info_queries.append(request.path)
        return connection.respond(self.info_status, json.dumps(self.info_body))

    def _klines(self, connection: ServerConnection, request: Request) -> Response:
        """``/api/v3/klines``: the days of ``self.klines`` in [startTime, endTime], at most
        ``limit``, as documented: arrays of strings but for the times and trade count."""
        query = parse_qs(urlsplit(request.path).query)
        self.kline_queries.append(query)
        if self.kline_refusals:
            status, retry_after = self.kline_refusals.pop(0)
            body = {"code": -1003, "msg": "Too many requests."}
            response = connection.respond(status, json.dumps(body))
            if retry_after is not None:
                response.headers["Retry-After"] = retry_after
            return response
        start, end = int(query["startTime"][0]), int(query["endTime"][0])
        limit = int(query["limit"][0])
        rows = [row for row in self.klines if start <= row[0] <= end][:limit]
        return connection.respond(HTTPStatus.OK, json.dumps(rows))

    async def handler(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        self.paths.append(connection.request.path)
        if self.scripts:
            await self.scripts.pop(0)(connection)
        await connection.wait_closed()  # open and silent until dropped (a stall)


@contextlib.asynccontextmanager
async def running_fake() -> AsyncIterator[FakeBinance]:
    fake = FakeBinance()
    server: Server
    async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as server:
        fake.port = next(iter(server.sockets)).getsockname()[1]
        yield fake


def daily_klines(first_day_ms: int, days: int) -> list[list[Any]]:
    """``days`` documented 1d klines from ``first_day_ms``: prices with 8 decimals as strings."""
    rows: list[list[Any]] = []
    for day in range(days):
        opened = first_day_ms + day * 86_400_000
        base = 90000 + day
        rows.append(
            [
                opened,
                f"{base}.10000000",
                f"{base + 500}.00000000",
                f"{base - 500}.00000000",
                f"{base}.20000000",
                "1234.56789000",
                opened + 86_399_999,
                "111111.00000000",
                1000,
                "600.00000000",
                "54000000.00000000",
                "0",
            ]
        )
    return rows
