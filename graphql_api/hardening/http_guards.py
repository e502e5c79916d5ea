"""Pure ASGI middlewares in front of the GraphQL endpoint.

- :class:`RequestIdMiddleware`: ``X-Request-ID`` in (when sane) or made up, echoed
  out, bound into structlog's context for every log line of the request.
- :class:`AccessLogMiddleware`: one structured line per request (and per
  WebSocket connection), with what the GraphQL layer knew: user, operation.
- :class:`BodyLimitMiddleware`: refuses bodies over a size with 413, before
  Strawberry buffers them, and closes WebSockets whose messages are over it (1009).
- :class:`CsrfPreventionMiddleware`: Apollo Server's CSRF rule. A browser sends
  a cross-site request without a preflight only when it is "simple": GET, or
  POST with a form/text content type and no custom headers. Such requests must
  carry ``Content-Type: application/json`` or a non-empty
  ``X-Apollo-Operation-Name`` / ``Apollo-Require-Preflight`` /
  ``X-Requested-With`` header, which a page on another site cannot add
  without the browser asking us first (CORS).
- :func:`cors_middleware`: Starlette's CORS middleware for the configured origins.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qs

import structlog
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = structlog.get_logger("quantgraph.access")

# What the GraphQL layer learns about the current request (user, operation…),
# for the access log line written when the response is done.
request_record: ContextVar[dict[str, Any] | None] = ContextVar("request_record", default=None)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
PREFLIGHT_HEADERS = (b"x-apollo-operation-name", b"apollo-require-preflight", b"x-requested-with")
_SIMPLE_CONTENT_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
CSRF_MESSAGE = (
    "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). "
    "Send it with 'Content-Type: application/json', or with a non-empty "
    "'X-Apollo-Operation-Name', 'Apollo-Require-Preflight' or 'X-Requested-With' header."
)


async def send_graphql_error(
    send: Send,
    status: int,
    message: str,
    code: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """A GraphQL-shaped error response from outside Strawberry."""
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def new_request_id() -> str:
    """32 random hex digits: what ``uuid.uuid4().hex`` gave, without building a
    UUID object on every request (about 6 µs of it)."""
    return os.urandom(16).hex()


class RequestIdMiddleware:
    """Parameters:
    header: the request/response header carrying the id.

    An incoming id is kept when it looks like an id (letters, digits, ``._:-``,
    at most 128) — anything else could inject into logs — and replaced otherwise.
    The (possibly new) id is written back into the request headers, so the app
    (the GraphQL context, masked errors) sees the same id as the logs.
    """

    def __init__(self, app: ASGIApp, *, header: str = "x-request-id") -> None:
        self.app = app
        self.header = header.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = _header(scope, self.header)
        request_id = given.decode("latin-1") if given else ""
        if not _REQUEST_ID.match(request_id):
            request_id = new_request_id()
            headers = [(k, v) for k, v in scope["headers"] if k != self.header]
            scope = {**scope, "headers": [*headers, (self.header, request_id.encode())]}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != self.header]
                headers.append((self.header, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


class AccessLogMiddleware:
    """One log line per HTTP request or WebSocket connection.

    Fields: method, path, status, duration_ms, and when the GraphQL layer set them
    (:data:`request_record`): operation, operation_type, user_id, error codes,
    cost. The request id comes from structlog's context. Never a traceback: a
    client's mistake is not a server incident.

    Parameters:
        quiet_paths: logged at debug level (probes and scrapes).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        quiet_paths: Iterable[str] = ("/healthz", "/readyz", "/metrics"),
    ) -> None:
        self.app = app
        self.quiet_paths = frozenset(quiet_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        record: dict[str, Any] = {}
        token = request_record.set(record)
        started = time.perf_counter()
        status: int | None = None

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close" and status is None:
                status = 403  # closed before accepting: the handshake was refused
            await send(message)

        try:
            await self.app(scope, receive, observe)
        except BaseException:
            status = 500
            raise
        finally:
            request_record.reset(token)
            fields = {
                "method": scope.get("method", "WEBSOCKET"),
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                **record,
            }
            if scope["path"] in self.quiet_paths:
                access_log.debug("request", **fields)
            else:
                access_log.info("request", **fields)


MESSAGE_TOO_BIG = 1009  # RFC 6455: a message too big to process


class BodyLimitMiddleware:
    """Parameters:
    max_bytes: the largest request body (or WebSocket message) accepted.

    A declared ``Content-Length`` over the limit is refused before reading; a
    body streamed without one is counted as it arrives and refused when it
    crosses the limit (the app never sees the rest). A WebSocket message over
    the limit closes the socket with ``1009 message too big``; the app sees a
    disconnect instead. (The server should refuse such frames first: the CLI
    sets uvicorn's ``ws_max_size`` to the same limit.)
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await self._refuse(send)
            else:
                # The server reads exactly the declared length as this request's body
                # (uvicorn's parsers take what follows as the next request): nothing
                # to count.
                await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLargeError:
            if started:
                raise
            await self._refuse(send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        closed = False

        async def limited_receive() -> Message:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive" and self._too_big(message):
                closed = True
                reason = f"message too big (limit {self.max_bytes} bytes)"
                await send({"type": "websocket.close", "code": MESSAGE_TOO_BIG, "reason": reason})
                return {"type": "websocket.disconnect", "code": MESSAGE_TOO_BIG, "reason": reason}
            return message

        async def guarded_send(message: Message) -> None:
            if not closed:  # the socket is closed: what the app still sends goes nowhere
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    def _too_big(self, message: Message) -> bool:
        text = message.get("text")
        if text is not None:
            # A character is 1 to 4 bytes: encode only when the count cannot decide.
            if len(text) > self.max_bytes:
                return True
            return len(text) * 4 > self.max_bytes and len(text.encode()) > self.max_bytes
        return len(message.get("bytes") or b"") > self.max_bytes

    async def _refuse(self, send: Send) -> None:
        await send_graphql_error(
            send,
            413,
            f"Request body is larger than {self.max_bytes} bytes",
            "PAYLOAD_TOO_LARGE",
            [(b"connection", b"close")],
        )


class _BodyTooLargeError(Exception):
    pass


class CsrfPreventionMiddleware:
    """Parameters:
    paths: the GraphQL endpoints to protect.

    A GET without a ``query`` (or persisted query ``extensions``) parameter has
    nothing to execute (the GraphiQL page) and passes.
    """

    def __init__(self, app: ASGIApp, *, paths: Iterable[str] = ("/graphql",)) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await send_graphql_error(send, 400, CSRF_MESSAGE, "BAD_REQUEST")

    @staticmethod
    def _allowed(scope: Scope) -> bool:
        if scope["method"] not in ("GET", "POST"):
            return True  # OPTIONS preflights; anything else is refused by the router
        if any(_header(scope, name) for name in PREFLIGHT_HEADERS):
            return True
        content_type = _header(scope, b"content-type")
        if content_type is not None:
            media_type = content_type.decode("latin-1").split(";", 1)[0].strip().lower()
            if media_type and media_type not in _SIMPLE_CONTENT_TYPES:
                return True  # a non-simple content type forces a CORS preflight
        if scope["method"] == "GET":
            params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            return "query" not in params and "extensions" not in params
        return False


def cors_middleware(origins: Sequence[str]) -> Middleware:
    """Bearer tokens, not cookies, carry credentials: no ``allow_credentials``."""
    return Middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=[
            "authorization",
            "content-type",
            "x-request-id",
            "apollo-require-preflight",
            "x-apollo-operation-name",
            "x-requested-with",
        ],
        expose_headers=["x-request-id", "retry-after"],
        max_age=600,
    )
