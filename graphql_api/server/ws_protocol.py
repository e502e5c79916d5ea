"""Strawberry's WebSocket protocol handlers, with shared subscriptions and limits.

Both protocols (graphql-transport-ws and the legacy graphql-ws) keep Strawberry's
behaviour for everything but the execution of subscription operations, which goes
through :mod:`graphql_api.realtime.multiplex`: identical subscriptions share one execution
and one JSON serialization per event, and every connection writes through its own
bounded :class:`~graphql_api.realtime.multiplex.Outbox`. Queries and mutations sent over a
WebSocket, and documents that do not parse, validate or name a subscription, take
Strawberry's own path unchanged.

Sharing is keyed by (document, variables, operation name, scope). The scope is who
the shared execution runs as, and therefore whose permissions it checks. What
each subscription field allows is declared on the field in the schema
(:mod:`schema.streams`) and read once per schema:

- public fields (``StreamSharing(public=True)``: ``ticks``) are shared by every
  subscriber of the same *role* (``ANONYMOUS`` for no principal); the execution
  runs with the principal of the subscriber that started it. Permission classes
  only look at the role for these fields, so every member of the group gets the
  outcome it would have got on its own (an anonymous group when
  ``ANONYMOUS_MARKET_DATA`` is false gets the UNAUTHENTICATED error once,
  delivered to each member).
- any other field (``orderUpdates``, ``signals``) is user-scoped: the scope holds
  the user id and role, so only the same user's connections share an execution.

Conflating fields (``StreamSharing(conflate_by=...)``: ticks by symbol) are
executed with one extra, aliased selection of the key field, which is popped
before serialization and keys both the per-socket conflation and the late-joiner
replay.

Also here: graphql-transport-ws server pings (Strawberry's ``keep_alive`` only
covers the legacy protocol), a per-user connection limit (close ``4429 too many
connections``), a connection-init timeout for the legacy protocol (close ``4408``,
as graphql-transport-ws does), a retryable refusal of ``connection_init`` while
the token cannot be checked because a store is down (close ``1013``; the legacy
protocol first gets a ``connection_error`` with ``SERVICE_UNAVAILABLE``), and
:func:`shutdown_all`, which sends ``complete``
for every active operation and closes each socket with ``1001 server shutting
down``.

This module sits at the top of the import graph with ``graphql_api.server.app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import strawberry
import structlog
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    NameNode,
    OperationType,
    SelectionSetNode,
    Visitor,
    get_operation_ast,
    parse,
    print_ast,
    specified_rules,
    validate,
    visit,
)
from strawberry.schema.base import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from graphql_api.hardening.query_limits.document_cache import DocumentCache
from graphql_api.hardening.query_limits.guard import QueryLimits, refusals, validation_rules
from graphql_api.platform.resilience import ServiceUnavailableError, as_service_unavailable
from graphql_api.platform.settings import Settings
from graphql_api.realtime.multiplex import (
    SLOW_CONSUMER_CLOSE,
    SLOW_CONSUMER_REASON,
    Failure,
    Item,
    MultiplexRegistry,
    Next,
    Outbox,
    SharedStream,
    SourceFactory,
    StreamKey,
)
from graphql_api.server.context import build_context
from resolvers.context import Context
from schema.streams import stream_declarations

log = structlog.get_logger(__name__)

KEY_ALIAS = "_qgConflationKey"

TOO_MANY_CONNECTIONS = 4429
TOO_MANY_CONNECTIONS_REASON = "too many connections"
INIT_TIMEOUT = 4408
INIT_TIMEOUT_REASON = "Connection initialisation timeout"
GOING_AWAY = 1001
# "Try again later" (RFC 6455): graphql-ws clients retry it; 4500 would end their retries.
TRY_AGAIN_LATER = 1013
GOING_AWAY_REASON = "server shutting down"
_PING_OPERATION = "\x00ping"  # an outbox slot no client operation id can take


@dataclass(frozen=True, slots=True)
class RealtimeOptions:
    """What the handlers read besides Strawberry's own view attributes.

    ``multiplex``: share identical subscriptions (off: Strawberry's per-socket path).
    ``send_queue_size``: undelivered lossless events one subscription may have on a
    socket before the socket is closed (1013).
    ``max_connections_per_user``: authenticated sockets per user id and process.
    ``shutdown_timeout``: how long :func:`shutdown_all` waits per socket.
    """

    multiplex: bool = True
    send_queue_size: int = 256
    max_connections_per_user: int | None = 20
    shutdown_timeout: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RealtimeOptions:
        # getattr: these settings are new; the defaults apply until they exist.
        return cls(
            multiplex=bool(getattr(settings, "ws_multiplex", True)),
            send_queue_size=int(
                getattr(settings, "ws_send_queue_size", settings.subscriber_queue_size)
            ),
            max_connections_per_user=getattr(settings, "ws_max_connections_per_user", 20) or None,
        )


@dataclass(eq=False)
class RealtimeState:
    """Per GraphQL view: its shared streams, live handlers and connections per user."""

    registry: MultiplexRegistry = field(default_factory=MultiplexRegistry)
    handlers: set[_Connection] = field(default_factory=set)
    connections: Counter[int] = field(default_factory=Counter)


_STATES: weakref.WeakKeyDictionary[object, RealtimeState] = weakref.WeakKeyDictionary()


def realtime_state(view: object) -> RealtimeState:
    state = _STATES.get(view)
    if state is None:
        state = _STATES[view] = RealtimeState()
    return state


def install(view: object, options: RealtimeOptions | None = None) -> None:
    """Use these handlers on one view instance (tests; production sets class attributes)."""
    setattr(view, "graphql_transport_ws_handler_class", MultiplexTransportWSHandler)  # noqa: B010
    setattr(view, "graphql_ws_handler_class", MultiplexLegacyWSHandler)  # noqa: B010
    if options is not None:
        setattr(view, "realtime_options", options)  # noqa: B010


async def shutdown_all(
    view: object | None = None,
    *,
    code: int = GOING_AWAY,
    reason: str = GOING_AWAY_REASON,
    timeout: float | None = None,
) -> int:
    """Complete every active operation and close every socket (of ``view``, or all).

    Call it before the server closes connections itself: uvicorn closes sockets
    with 1012 *before* the lifespan shutdown runs, so use
    :class:`graphql_api.server.serving.GracefulServer` (and keep a call in the lifespan
    for other servers). Returns how many sockets were closed.
    """
    states = [realtime_state(view)] if view is not None else list(_STATES.values())
    connections = [c for state in states for c in list(state.handlers)]
    await asyncio.gather(
        *(c.close_gracefully(code, reason, timeout) for c in connections),
        return_exceptions=True,
    )
    return len(connections)


# --- documents ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Streams:
    """What a schema's subscription fields declare (:mod:`schema.streams`), by field name."""

    public: frozenset[str]  # the result does not depend on who asks (beyond role)
    conflate_by: Mapping[str, str]  # conflating fields and the event field that keys them


_NO_STREAMS = _Streams(frozenset(), {})
_STREAMS: weakref.WeakKeyDictionary[BaseSchema, _Streams] = weakref.WeakKeyDictionary()


def _streams(schema: BaseSchema) -> _Streams:
    """The declarations of ``schema``, read once per schema."""
    if not isinstance(schema, strawberry.Schema):
        return _NO_STREAMS  # nothing declared: every field user-scoped and lossless
    streams = _STREAMS.get(schema)
    if streams is None:
        declared = stream_declarations(schema)
        streams = _STREAMS[schema] = _Streams(
            public=frozenset(name for name, d in declared.items() if d.public),
            conflate_by={
                name: d.conflate_by for name, d in declared.items() if d.conflate_by is not None
            },
        )
    return streams


@dataclass(frozen=True, slots=True)
class _Analysis:
    digest: str
    public: bool
    executable: str  # the document to run (with the conflation key, if any)
    conflate_field: str | None  # response key of the root field carrying the key


@dataclass(frozen=True, slots=True)
class _Plan:
    key: StreamKey
    analysis: _Analysis
    variables: dict[str, Any] | None
    operation_name: str | None


def _parse(query: str, query_limits: QueryLimits, cache: DocumentCache | None) -> DocumentNode:
    """``query`` parsed under the token limit, through the app's document cache when it has
    one (the execution that follows then finds it there); raises GraphQLError."""
    if cache is not None and cache.enabled:
        return cache.parse(query, query_limits.max_tokens)
    return parse(query, max_tokens=query_limits.max_tokens)


def _is_query_or_mutation(
    query: object,
    operation_name: object,
    query_limits: QueryLimits,
    cache: DocumentCache | None = None,
) -> bool:
    """Whether ``query`` selects a query or mutation (not a subscription).

    Anything unreadable answers False: the subscription path reports it.
    """
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        return False
    try:
        document = _parse(query, query_limits, cache)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation is not OperationType.SUBSCRIPTION


def _analyse(
    schema: GraphQLSchema | None,
    streams: _Streams,
    query: str,
    operation_name: str | None,
    query_limits: QueryLimits,
    cache: DocumentCache | None = None,
) -> _Analysis | None:
    """How a subscription document is shared, or None for Strawberry's own path.

    The document is parsed and checked against ``query_limits`` before graphql-core's
    validation, as on Strawberry's path: what is over a limit (or invalid) takes
    that path, which reports it.
    """
    try:
        document = _parse(query, query_limits, cache)
    except GraphQLError:
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        return None
    if schema is not None:
        over, _cost = refusals(query_limits, schema, document, operation_name, None)
        rules = validation_rules(tuple(specified_rules), query_limits.introspection)
        if over or validate(schema, document, rules):
            return None  # let Strawberry report the errors exactly as it always has
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    names = _root_fields(operation.selection_set, fragments, {})
    if names is None:
        return None
    executable, conflate_field = query, None
    conflating = names & streams.conflate_by.keys()
    if conflating:
        top = operation.selection_set.selections
        root = top[0] if len(top) == 1 else None
        if not isinstance(root, FieldNode) or root.selection_set is None:
            return None  # cannot add the key reliably: keep the unshared path
        if any(
            isinstance(s, FieldNode) and (s.alias or s.name).value == KEY_ALIAS
            for s in root.selection_set.selections
        ):
            return None
        executable = print_ast(visit(document, _AddKey(root, streams.conflate_by[root.name.value])))
        conflate_field = (root.alias or root.name).value
    digest = hashlib.sha256(print_ast(document).encode()).hexdigest()
    return _Analysis(digest, names <= streams.public, executable, conflate_field)


def _root_fields(
    selections: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    known: dict[str, frozenset[str] | None],
) -> frozenset[str] | None:
    """Root field names through fragments; each fragment is looked at once (``known``)."""
    names: set[str] = set()
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
            continue
        if isinstance(selection, InlineFragmentNode):
            inner = _root_fields(selection.selection_set, fragments, known)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in fragments:
                return None
            if name not in known:
                known[name] = None  # while it is looked at: a spread back is a cycle
                known[name] = _root_fields(fragments[name].selection_set, fragments, known)
            inner = known[name]
        else:  # pragma: no cover - no other selection kinds exist
            return None
        if inner is None:
            return None
        names |= inner
    return frozenset(names)


class _AddKey(Visitor):
    def __init__(self, target: FieldNode, key_field: str) -> None:
        super().__init__()
        self.target = target
        self.key_field = key_field

    def enter_field(self, node: FieldNode, *_args: object) -> FieldNode | None:
        if node is not self.target or node.selection_set is None:
            return None
        key = FieldNode(
            alias=NameNode(value=KEY_ALIAS),
            name=NameNode(value=self.key_field),
            arguments=(),
            directives=(),
        )
        selections = (*node.selection_set.selections, key)
        return dataclasses.replace(
            node, selection_set=dataclasses.replace(node.selection_set, selections=selections)
        )


def _pop_key(data: object, response_key: str | None) -> Hashable:
    if response_key is None or not isinstance(data, dict):
        return None
    value = data.get(response_key)
    if isinstance(value, dict):
        key: Hashable = value.pop(KEY_ALIAS, None)
        return key
    return None


# --- one connection ----------------------------------------------------------------


class _Member:
    """One subscription of one connection, attached to a shared stream."""

    __slots__ = ("conflate", "done", "failure", "head", "op_id", "outbox", "tail")

    def __init__(self, outbox: Outbox, op_id: str, head: str, tail: str, conflate: bool) -> None:
        self.outbox = outbox
        self.op_id = op_id
        self.head = head
        self.tail = tail
        self.conflate = conflate
        self.done = asyncio.Event()
        self.failure: Failure | None = None

    def deliver(self, key: Hashable, payload: str) -> None:
        if self.conflate:
            self.outbox.offer_latest(self.op_id, key, (self.head, payload, self.tail))
        else:
            self.outbox.offer_all(self.op_id, (self.head, payload, self.tail))

    def finish(self, failure: Failure | None) -> None:
        self.failure = failure
        self.done.set()


class _Connection:
    """What both protocol handlers add to Strawberry's, for one socket."""

    def __init__(
        self,
        handler: MultiplexTransportWSHandler | MultiplexLegacyWSHandler,
        *,
        legacy: bool,
    ) -> None:
        self.handler = handler
        self.legacy = legacy
        self.view = handler.view
        self.context: Context = handler.context
        self.state = realtime_state(handler.view)
        configured = getattr(handler.view, "realtime_options", None)
        self.options = (
            configured
            if isinstance(configured, RealtimeOptions)
            else RealtimeOptions.from_settings(self.context.services.settings)
        )
        self._outbox: Outbox | None = None
        self.members: dict[str, tuple[SharedStream, _Member]] = {}
        self.refused = False
        self.closing = False
        self._admitted: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.state.handlers.add(self)

    # frames

    def next_head(self, op_id: str) -> str:
        if self.legacy:
            return '{"type":"data","id":' + json.dumps(op_id) + ',"payload":'
        return '{"id":' + json.dumps(op_id) + ',"type":"next","payload":'

    def complete_text(self, op_id: str) -> str:
        return json.dumps({"type": "complete", "id": op_id}, separators=(",", ":"))

    def error_text(self, op_id: str, errors: Sequence[Mapping[str, object]]) -> str:
        payload: object = errors[0] if self.legacy and errors else errors
        return json.dumps({"type": "error", "id": op_id, "payload": payload}, separators=(",", ":"))

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(
                self._send_text,
                capacity=self.options.send_queue_size,
                on_overflow=self._overflowed,
                stats=self.state.registry.stats,
            )
        return self._outbox

    async def _send_text(self, text: str) -> None:
        websocket = getattr(self.handler.websocket, "ws", None)
        if websocket is not None:  # Starlette: send the shared text as it is
            await websocket.send_text(text)
        else:  # another integration: go through its JSON adapter
            await self.handler.websocket.send_json(json.loads(text))

    # admission

    def admit(self) -> bool:
        if self._admitted is not None:
            return True
        principal = self.context.principal
        if principal is None:
            return True
        limit = self.options.max_connections_per_user
        if limit is not None and self.state.connections[principal.user_id] >= limit:
            log.info("websocket refused: too many connections", user_id=principal.user_id)
            self.refused = True
            return False
        self.state.connections[principal.user_id] += 1
        self._admitted = principal.user_id
        return True

    def release(self) -> None:
        self.state.handlers.discard(self)
        if self._admitted is not None:
            counts = self.state.connections
            counts[self._admitted] -= 1
            if counts[self._admitted] <= 0:
                del counts[self._admitted]
            self._admitted = None
        for task in self._tasks:
            task.cancel()
        if self._outbox is not None:
            self._outbox.close()

    def spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def keep_pinging(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.outbox.offer_latest(_PING_OPERATION, "ping", ('{"type":"ping"}', "", ""))

    # shared subscriptions

    @property
    def query_limits(self) -> QueryLimits:
        limits = getattr(self.view, "query_limits", None)
        return limits if isinstance(limits, QueryLimits) else QueryLimits()

    @property
    def document_cache(self) -> DocumentCache | None:
        cache = getattr(self.view, "document_cache", None)
        return cache if isinstance(cache, DocumentCache) else None

    def plan(self, query: object, variables: object, operation_name: object) -> _Plan | None:
        if not self.options.multiplex or self.closing or not isinstance(query, str):
            return None
        if operation_name is not None and not isinstance(operation_name, str):
            return None
        if variables is not None and not isinstance(variables, dict):
            return None
        # Strawberry has no public accessor for the graphql-core schema it built
        # (its own code reads ``_schema`` too); validation here needs that schema.
        schema = getattr(self.handler.schema, "_schema", None)
        analysis = _analyse(
            schema if isinstance(schema, GraphQLSchema) else None,
            _streams(self.handler.schema),
            query,
            operation_name,
            self.query_limits,
            self.document_cache,
        )
        if analysis is None:
            return None
        try:
            canonical = json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            return None
        principal = self.context.principal
        role = principal.role.value if principal is not None else "ANONYMOUS"
        scope: tuple[Hashable, ...]
        if analysis.public:
            scope = ("public", role, self.context.auth_error is not None)
        else:
            scope = ("user", principal.user_id if principal is not None else None, role)
        key = StreamKey(analysis.digest, canonical, operation_name, scope)
        return _Plan(key, analysis, variables, operation_name)

    async def run_shared(self, plan: _Plan, op_id: str) -> Failure | None:
        """Attach to the shared stream until it ends (or this task is cancelled)."""
        conflate = plan.analysis.conflate_field is not None
        member = _Member(self.outbox, op_id, self.next_head(op_id), "}", conflate)
        stream = self.state.registry.join(plan.key, self._source(plan), member, conflate=conflate)
        self.members[op_id] = (stream, member)
        try:
            await member.done.wait()
            return member.failure
        finally:
            stream.detach(member)
            entry = self.members.get(op_id)
            if entry is not None and entry[1] is member:
                del self.members[op_id]

    def end_member(self, op_id: str) -> None:
        entry = self.members.pop(op_id, None)
        if entry is not None:
            stream, member = entry
            stream.detach(member)
            member.finish(None)

    def discard_queued(self, op_id: str) -> None:
        """Drop what is queued for ``op_id`` and not yet sent (it was stopped)."""
        if self._outbox is not None:
            self._outbox.discard(op_id)

    def send_terminal(self, op_id: str, failure: Failure | None) -> None:
        if failure is None:
            self.outbox.offer_control(op_id, self.complete_text(op_id))
        else:
            self.outbox.offer_control(op_id, self.error_text(op_id, failure.errors))

    def _source(self, plan: _Plan) -> SourceFactory:
        """The shared execution, as the joiner who starts it (see the module docstring)."""
        joiner = self.context
        schema: BaseSchema = self.handler.schema
        root_value = self.handler.root_value
        encode = self.view.encode_json
        analysis = plan.analysis

        async def produce() -> AsyncIterator[Item]:
            context = build_context(
                joiner.services,
                joiner.request,
                request_id=f"shared-{uuid.uuid4().hex}",
                principal=joiner.principal,
                auth_error=joiner.auth_error,
            )
            results = await schema.subscribe(
                analysis.executable,
                variable_values=plan.variables,
                context_value=context,
                root_value=root_value,
                operation_name=plan.operation_name,
            )
            first = True
            async with aclosing(results):
                async for result in results:
                    if first and isinstance(result, PreExecutionError):
                        yield Failure([error.formatted for error in result.errors or []])
                        return
                    first = False
                    if not isinstance(result, ExecutionResult):  # pragma: no cover
                        continue
                    key = _pop_key(result.data, analysis.conflate_field)
                    body: dict[str, object] = {"data": result.data}
                    if result.errors:
                        body["errors"] = [error.formatted for error in result.errors]
                    if result.extensions:
                        body["extensions"] = result.extensions
                    encoded = encode(body)
                    yield Next(encoded.decode() if isinstance(encoded, bytes) else encoded, key)

        return produce

    def _overflowed(self, op_id: str) -> None:
        """A lossless subscription fell ``send_queue_size`` events behind: close the socket."""
        self.state.registry.stats.slow_consumers += 1
        log.warning("websocket closed: subscriber too slow", operation=op_id)
        self.closing = True
        for other in list(self.members):
            self.end_member(other)
        reason = f"{SLOW_CONSUMER_REASON} ({self.options.send_queue_size} events behind)"
        self.spawn(self._close(SLOW_CONSUMER_CLOSE, reason, None))

    async def connection_init(self, init: Callable[[], Awaitable[None]]) -> None:
        """Run Strawberry's ``connection_init`` handling; a store that is down while the
        token is checked (the user's role is read from the database) closes the socket
        ``1013`` instead of failing the connection abnormally."""
        try:
            await init()
        except Exception as error:
            unavailable = as_service_unavailable(error)
            if unavailable is None:
                raise
            await self._refuse_unavailable(unavailable)

    async def _refuse_unavailable(self, unavailable: ServiceUnavailableError) -> None:
        log.warning(
            "websocket refused: service unavailable",
            service=unavailable.service,
            reason=unavailable.reason,
        )
        self.closing = True
        reason = f"{unavailable.service} unavailable; retry later"
        if self.legacy:
            payload: dict[str, object] = {
                "message": reason,
                "code": "SERVICE_UNAVAILABLE",
                "service": unavailable.service,
            }
            if unavailable.retry_after:
                payload["retryAfter"] = round(unavailable.retry_after, 3)
            with contextlib.suppress(Exception):
                await self.handler.websocket.send_json(
                    {"type": "connection_error", "payload": payload}
                )
        await self._close(TRY_AGAIN_LATER, reason, None)

    async def _close(self, code: int, reason: str, timeout: float | None) -> None:
        # No timeout for a slow consumer: the close frame goes out when the peer
        # reads again (or the connection drops); nothing is queued for it meanwhile.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.handler.websocket.close(code, reason), timeout)

    async def close_gracefully(self, code: int, reason: str, timeout: float | None) -> None:
        if self.closing:
            return
        self.closing = True
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        tasks = self.handler.end_operations()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        if self._outbox is not None:
            await self._outbox.drain(timeout)
            self._outbox.close()
        await self._close(code, reason, timeout)


# --- the handlers ------------------------------------------------------------------


class MultiplexTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with shared subscriptions, server pings and limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.realtime = _Connection(self, legacy=False)

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            self.realtime.release()

    async def handle_message(self, message: Message) -> None:
        if self.realtime.refused:
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await self.realtime.connection_init(
            functools.partial(super().handle_connection_init, message)
        )

    async def send_message(self, message: Message) -> None:
        if message["type"] == "connection_ack":
            if not self.realtime.admit():
                await self.websocket.close(TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS_REASON)
                return
            interval = self.view.keep_alive_interval
            if self.view.keep_alive and interval:
                self.realtime.spawn(self.realtime.keep_pinging(interval))
        elif self.realtime.refused:
            return
        await super().send_message(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        realtime = self.realtime
        if realtime.refused or realtime.closing:
            return  # the socket is being closed: nothing more is started on it
        plan = realtime.plan(operation.query, operation.variables, operation.operation_name)
        if plan is None:
            await super().run_operation(operation)
            return
        try:
            failure = await realtime.run_shared(plan, operation.id)
        except asyncio.CancelledError:
            # The client completed it (or the socket went away): drop what is queued.
            realtime.discard_queued(operation.id)
            raise
        if operation.completed:
            return
        operation.completed = True
        if self.operations.get(operation.id) is operation:
            self.forget_id(operation.id)
        realtime.send_terminal(operation.id, failure)

    def end_operations(self) -> list[asyncio.Task[Any]]:
        """For shutdown: end every operation; shared ones send ``complete`` themselves."""
        tasks: list[asyncio.Task[Any]] = []
        for op_id, operation in list(self.operations.items()):
            if operation.task is not None:
                tasks.append(operation.task)
            if op_id in self.realtime.members:
                self.realtime.end_member(op_id)
                continue
            operation.completed = True
            self.forget_id(op_id)
            if operation.task is not None:
                operation.task.cancel()
            self.realtime.outbox.offer_control(op_id, self.realtime.complete_text(op_id))
        return tasks


class MultiplexLegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws with shared subscriptions, an init timeout and limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.realtime = _Connection(self, legacy=True)

    async def handle(self) -> None:
        wait: timedelta = self.view.connection_init_wait_timeout
        self.realtime.spawn(self._init_timeout(wait.total_seconds()))
        try:
            await super().handle()
        finally:
            self.realtime.release()

    async def _init_timeout(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not self.connection_acknowledged and not self.realtime.refused:
            with contextlib.suppress(Exception):
                await self.websocket.close(INIT_TIMEOUT, INIT_TIMEOUT_REASON)

    async def handle_message(self, message: OperationMessage) -> None:
        if self.realtime.refused:
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        await self.realtime.connection_init(
            functools.partial(super().handle_connection_init, message)
        )

    async def send_message(self, message: OperationMessage) -> None:
        if message["type"] == "connection_ack" and not self.realtime.admit():
            await super().send_message(
                {"type": "connection_error", "payload": {"message": TOO_MANY_CONNECTIONS_REASON}}
            )
            await self.websocket.close(TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS_REASON)
            return
        if self.realtime.refused:
            return
        await super().send_message(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        realtime = self.realtime
        task = asyncio.current_task()
        if realtime.refused or realtime.closing:
            if self.tasks.get(operation_id) is task:
                del self.tasks[operation_id]
            return  # the socket is being closed: nothing more is started on it
        if _is_query_or_mutation(
            query, operation_name, realtime.query_limits, realtime.document_cache
        ):
            await self._answer_once(operation_id, query, operation_name, variables)
            return
        plan = realtime.plan(query, variables, operation_name)
        if plan is None:
            await super().handle_async_results(operation_id, query, operation_name, variables)
            return
        try:
            failure = await realtime.run_shared(plan, operation_id)
            realtime.send_terminal(operation_id, failure)
        except asyncio.CancelledError:
            # Stopped by the client: like Strawberry, confirm with ``complete``.
            realtime.discard_queued(operation_id)
            realtime.send_terminal(operation_id, None)
            raise
        finally:
            if self.tasks.get(operation_id) is task:
                del self.tasks[operation_id]

    async def _answer_once(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """A query or mutation: one ``data`` message, then ``complete``.

        subscriptions-transport-ws carried them too, but Strawberry's legacy
        handler only subscribes, which refuses them with an exception.
        """
        task = asyncio.current_task()
        try:
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation_name,
            )
            await self.send_data_message(result, operation_id)
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            await self.send_message({"type": "complete", "id": operation_id})
            raise
        finally:
            if self.tasks.get(operation_id) is task:
                del self.tasks[operation_id]

    def end_operations(self) -> list[asyncio.Task[Any]]:
        """For shutdown: end every operation; each sends ``complete`` (Strawberry's on cancel)."""
        tasks = list(self.tasks.values())
        for op_id, task in list(self.tasks.items()):
            if op_id in self.realtime.members:
                self.realtime.end_member(op_id)
            else:
                task.cancel()
        return tasks


__all__ = [
    "MultiplexLegacyWSHandler",
    "MultiplexTransportWSHandler",
    "RealtimeOptions",
    "RealtimeState",
    "install",
    "realtime_state",
    "shutdown_all",
]
