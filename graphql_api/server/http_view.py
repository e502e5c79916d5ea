"""GraphQL over HTTP as the spec has it, on top of Strawberry's ASGI view.

Strawberry 0.341 always answers ``application/json`` with status 200, and
turns request problems it detects itself (bad JSON, a mutation over GET…) into
``text/plain`` bodies. :class:`GraphQLOverHTTP` adds:

- ``application/graphql-response+json`` when the client's ``Accept`` prefers it,
  with the spec's status codes: a *request error* (parse, validation, variable
  coercion, or a refusal before execution) has no ``data`` entry and status 400;
  once execution started the status is 200, even with field errors. Clients that
  accept only ``application/json`` (or send no ``Accept``) keep the legacy 200.
- JSON GraphQL error bodies with ``extensions.code`` for the view's own HTTP errors;
- a 400, not a 500, for bodies that are not UTF-8, nest too deeply to decode,
  or are JSON but not an object;
- a 400 for a subscription sent as a plain request: Strawberry would execute it
  like a query and fail on the stream its resolver returns. Subscriptions
  stream over a WebSocket, or over Server-Sent Events (the ``graphql-sse``
  protocol, chosen by ``Accept: text/event-stream``), which never reaches
  :meth:`GraphQLOverHTTP.execute_single`.

A plain JSON ``POST`` (the request every client sends) takes a shorter way
through the view than Strawberry's general ``run``, which is built for every
transport: it parses the ``Content-Type`` with the standard library's e-mail
parser and checks each result against a runtime protocol, about a tenth of a
``{ __typename }`` request. :meth:`GraphQLOverHTTP.run_json_post` makes the
same calls in the same order (root value, sub-response, context, body,
execution, result, response) and answers every malformed body with Strawberry's
own messages; anything else (GET, other content types, streaming ``Accept``,
batching or incremental delivery switched on) goes through Strawberry's ``run``.

Use it as the base class of the app's view (instead of ``strawberry.asgi.GraphQL``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from typing_extensions import TypeVar

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
_JSON_TYPES = ("application/json", "application/*", "*/*")
_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}

# ``application/json``, maybe with parameters: what Strawberry's parser reads as JSON.
_PLAIN_JSON = re.compile(rb"application/json\s*(;|$)")

ContextT = TypeVar("ContextT", default=None)
RootValueT = TypeVar("RootValueT", default=None)


def wants_graphql_response_json(accept: str | None) -> bool:
    """Does ``Accept`` rank ``application/graphql-response+json`` at least as high as JSON?"""
    if not accept or "graphql-response+json" not in accept:
        return False
    best_graphql = best_json = 0.0
    for part in accept.split(","):
        media_type, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media_type = media_type.lower()
        if media_type == GRAPHQL_RESPONSE_JSON:
            best_graphql = max(best_graphql, quality)
        elif media_type in _JSON_TYPES:
            best_json = max(best_json, quality)
    return best_graphql > 0 and best_graphql >= best_json


def is_request_error(result: ExecutionResult) -> bool:
    """No data, and no error tied to a field: execution never started."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(error.path is None for error in errors)


def http_error_response(status_code: int, message: str) -> Response:
    code = _HTTP_CODES.get(status_code, "BAD_REQUEST" if status_code < 500 else "INTERNAL")
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(json.dumps(body), status_code=status_code, media_type="application/json")


SUBSCRIPTION_NEEDS_A_STREAM = (
    "subscriptions stream over a WebSocket (graphql-transport-ws or graphql-ws) or "
    "Server-Sent Events (POST with Accept: text/event-stream), not a plain HTTP request"
)


class GraphQLOverHTTP(GraphQL[ContextT, RootValueT]):
    def encode_json(self, data: object) -> str:
        # orjson: a 10,000-bar klines answer (1.4 MB) took ~20 ms to encode with
        # the standard library, about a fifth of the request. Its output is the
        # same JSON, written compactly and in UTF-8 (non-ASCII text is not
        # escaped). What it refuses (an integer past 64 bits, a key that is not a
        # string) goes to the standard encoder, as before.
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return json.dumps(data, separators=(",", ":"))

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry assumes an object (or a batch list) and fails with a 500 on
        # `true`, `1` or `"x"`; the same check suits the GET `variables`/`extensions`.
        parsed = super().parse_json(data)
        if not isinstance(parsed, (dict, list)):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    def decode_json(self, data: str | bytes) -> object:
        # Strawberry turns JSONDecodeError into a 400 (HTTP) or a 4400 close
        # (WebSocket); bytes that are not UTF-8 and absurdly deep nesting would
        # otherwise escape as 500s.
        try:
            return super().decode_json(data)
        except (UnicodeDecodeError, RecursionError) as error:
            raise json.JSONDecodeError(
                f"not a JSON document ({type(error).__name__})", "", 0
            ) from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            if self._is_plain_json_post(scope):
                response = await self.run_json_post(request)
            else:
                response = await self.run(request)
        except HTTPException as error:
            response = http_error_response(error.status_code, error.reason)
        await response(scope, receive, send)

    def _is_plain_json_post(self, scope: Scope) -> bool:
        """A single operation in a JSON body, answered with one JSON response."""
        if scope["method"] != "POST":
            return False
        config = self.schema.config
        if config.batching_config is not None or config.enable_experimental_incremental_execution:
            return False
        content_type = accept = None  # the first of each, as Starlette's headers read them
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"accept" and accept is None:
                accept = value.lower()
        if content_type is None:
            return False
        # Streaming transports (graphql-sse, multipart) are chosen by Accept.
        if accept is not None and (b"stream" in accept or b"multipart" in accept):
            return False
        return _PLAIN_JSON.match(content_type) is not None

    async def run_json_post(self, request: Request) -> Response:
        """Strawberry's ``run`` for a JSON ``POST``, without its transport dispatch."""
        root_value = await self.get_root_value(request)
        request_adapter = self.request_adapter_class(request)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        data = self.parse_json(await request.body())  # a 400 for what is not a JSON object
        if isinstance(data, list):
            self._validate_batch_request(data, protocol="http")  # batching is off: a 400
            raise HTTPException(400, "Batching is not enabled")
        result = await self.execute_single(
            request=request,
            request_adapter=request_adapter,
            sub_response=sub_response,
            context=context,
            root_value=root_value,
            request_data=_request_data(data),
        )
        response_data = await self.process_result(request=request, result=result)
        if result.errors:
            self._handle_errors(result.errors, response_data)
        return self.create_response(response_data=response_data, sub_response=sub_response)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: ContextT,
        root_value: RootValueT | None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # Strawberry's method, with subscriptions left out of the allowed types:
        # streaming transports (SSE) were picked before this point, and what
        # reaches here is answered with one response, which a stream cannot be.
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        if not self.allow_queries_via_get and request_adapter.method == "GET":
            allowed -= {OperationType.QUERY}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(400, SUBSCRIPTION_NEEDS_A_STREAM) from error
            raise HTTPException(400, error.as_http_error_reason(request_adapter.method)) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error

    async def get_sub_response(self, request: Request) -> Response:  # type: ignore[override]
        sub_response = await super().get_sub_response(request)
        if wants_graphql_response_json(request.headers.get("accept")):
            # A mark for create_response, which does not see the request.
            sub_response.headers["content-type"] = GRAPHQL_RESPONSE_JSON
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if is_request_error(result) and wants_graphql_response_json(request.headers.get("accept")):
            response.pop("data", None)
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        if sub_response.headers.get("content-type") == GRAPHQL_RESPONSE_JSON:
            response.headers["content-type"] = GRAPHQL_RESPONSE_JSON  # replaces both
            request_error = isinstance(response_data, dict) and "data" not in response_data
            if request_error and not sub_response.status_code:
                response.status_code = 400
        return response


def _request_data(data: dict[str, Any]) -> GraphQLRequestData:
    """The operation of a JSON body, checked with Strawberry's messages."""
    query = data.get("query")
    if not isinstance(query, (str, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `query` must be a string or null, if provided."
        )
    variables = data.get("variables")
    if not isinstance(variables, (dict, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `variables` must be an object or null, if provided."
        )
    extensions = data.get("extensions")
    if not isinstance(extensions, (dict, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `extensions` must be an object or null, if provided."
        )
    return GraphQLRequestData(
        query=query,
        variables=variables,
        operation_name=data.get("operationName"),
        extensions=extensions,
        protocol="http",
    )
