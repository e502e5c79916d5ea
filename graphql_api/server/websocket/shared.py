"""Running one socket's subscription operations on shared streams.

:class:`SharedOperations` decides whether an operation can share an execution
(:func:`~graphql_api.server.websocket.documents.analyse` plus the scope), attaches a
:class:`Member` to the :class:`~graphql_api.realtime.multiplex.SharedStream` for its key,
and starts the execution (as the joiner who starts it) when there is none yet.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Hashable
from typing import Any, Protocol

from graphql import GraphQLSchema
from strawberry.schema.base import BaseSchema
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from graphql_api.hardening.query_limits.document_cache import DocumentCache
from graphql_api.hardening.query_limits.guard import QueryLimits
from graphql_api.realtime.multiplex import (
    Failure,
    Item,
    Next,
    Outbox,
    SharedStream,
    SourceFactory,
    StreamKey,
)
from graphql_api.server.context import build_context
from graphql_api.server.websocket.documents import Plan, analyse, declared_streams, pop_key
from graphql_api.server.websocket.messages import NEXT_TAIL, complete_text, error_text, next_head
from graphql_api.server.websocket.options import RealtimeOptions
from graphql_api.server.websocket.state import RealtimeState
from resolvers.context import Context


class _Handler(Protocol):
    @property
    def schema(self) -> BaseSchema: ...

    @property
    def root_value(self) -> Any: ...


class SharingConnection(Protocol):
    """What shared operations use of their socket's connection
    (:class:`~graphql_api.server.websocket.connection.Connection`, which holds them)."""

    closing: bool
    legacy: bool

    @property
    def options(self) -> RealtimeOptions: ...

    @property
    def handler(self) -> _Handler: ...

    @property
    def view(self) -> Any: ...

    @property
    def context(self) -> Context: ...

    @property
    def state(self) -> RealtimeState: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def query_limits(self) -> QueryLimits: ...

    @property
    def document_cache(self) -> DocumentCache | None: ...


class Member:
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


class SharedOperations:
    """The shared subscription operations of one connection, by operation id."""

    def __init__(self, connection: SharingConnection) -> None:
        self.connection = connection
        self.members: dict[str, tuple[SharedStream, Member]] = {}

    def __contains__(self, op_id: str) -> bool:
        return op_id in self.members

    def plan(self, query: object, variables: object, operation_name: object) -> Plan | None:
        connection = self.connection
        if not connection.options.multiplex or connection.closing or not isinstance(query, str):
            return None
        if operation_name is not None and not isinstance(operation_name, str):
            return None
        if variables is not None and not isinstance(variables, dict):
            return None
        # Strawberry has no public accessor for the graphql-core schema it built
        # (its own code reads ``_schema`` too); validation here needs that schema.
        schema = getattr(connection.handler.schema, "_schema", None)
        analysis = analyse(
            schema if isinstance(schema, GraphQLSchema) else None,
            declared_streams(connection.handler.schema),
            query,
            operation_name,
            connection.query_limits,
            connection.document_cache,
        )
        if analysis is None:
            return None
        try:
            canonical = json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            return None
        principal = connection.context.principal
        role = principal.role.value if principal is not None else "ANONYMOUS"
        scope: tuple[Hashable, ...]
        if analysis.public:
            scope = ("public", role, connection.context.auth_error is not None)
        else:
            scope = ("user", principal.user_id if principal is not None else None, role)
        key = StreamKey(analysis.digest, canonical, operation_name, scope)
        return Plan(key, analysis, variables, operation_name)

    async def run(self, plan: Plan, op_id: str) -> Failure | None:
        """Attach to the shared stream until it ends (or this task is cancelled)."""
        connection = self.connection
        conflate = plan.analysis.conflate_field is not None
        head = next_head(op_id, legacy=connection.legacy)
        member = Member(connection.outbox, op_id, head, NEXT_TAIL, conflate)
        stream = connection.state.registry.join(
            plan.key, self._source(plan), member, conflate=conflate
        )
        self.members[op_id] = (stream, member)
        try:
            await member.done.wait()
            return member.failure
        finally:
            stream.detach(member)
            entry = self.members.get(op_id)
            if entry is not None and entry[1] is member:
                del self.members[op_id]

    def end(self, op_id: str) -> None:
        entry = self.members.pop(op_id, None)
        if entry is not None:
            stream, member = entry
            stream.detach(member)
            member.finish(None)

    def end_all(self) -> None:
        for op_id in list(self.members):
            self.end(op_id)

    def send_terminal(self, op_id: str, failure: Failure | None) -> None:
        connection = self.connection
        if failure is None:
            connection.outbox.offer_control(op_id, complete_text(op_id))
        else:
            text = error_text(op_id, failure.errors, legacy=connection.legacy)
            connection.outbox.offer_control(op_id, text)

    def _source(self, plan: Plan) -> SourceFactory:
        """The shared execution, as the joiner who starts it (see the package docstring)."""
        joiner = self.connection.context
        schema: BaseSchema = self.connection.handler.schema
        root_value = self.connection.handler.root_value
        encode = self.connection.view.encode_json
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
                    key = pop_key(result.data, analysis.conflate_field)
                    body: dict[str, object] = {"data": result.data}
                    if result.errors:
                        body["errors"] = [error.formatted for error in result.errors]
                    if result.extensions:
                        body["extensions"] = result.extensions
                    encoded = encode(body)
                    yield Next(encoded.decode() if isinstance(encoded, bytes) else encoded, key)

        return produce
