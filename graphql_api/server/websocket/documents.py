"""Which subscription documents are shared, and the key that decides with whom.

A document is shared when it parses, passes the query limits and validation,
and selects a subscription; what its root fields declare (:mod:`schema.streams`)
decides whether it is public (shared per role) and whether it conflates (by which
event field). Anything else answers None and takes Strawberry's own path, which
reports the errors exactly as it always has.
"""

from __future__ import annotations

import dataclasses
import hashlib
import weakref
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import strawberry
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

from graphql_api.hardening.query_limits.document_cache import DocumentCache
from graphql_api.hardening.query_limits.guard import QueryLimits, refusals, validation_rules
from graphql_api.realtime.multiplex import StreamKey
from schema.streams import stream_declarations

KEY_ALIAS = "_qgConflationKey"


@dataclass(frozen=True, slots=True)
class Streams:
    """What a schema's subscription fields declare (:mod:`schema.streams`), by field name."""

    public: frozenset[str]  # the result does not depend on who asks (beyond role)
    conflate_by: Mapping[str, str]  # conflating fields and the event field that keys them


_NO_STREAMS = Streams(frozenset(), {})
_STREAMS: weakref.WeakKeyDictionary[BaseSchema, Streams] = weakref.WeakKeyDictionary()


def declared_streams(schema: BaseSchema) -> Streams:
    """The declarations of ``schema``, read once per schema."""
    if not isinstance(schema, strawberry.Schema):
        return _NO_STREAMS  # nothing declared: every field user-scoped and lossless
    streams = _STREAMS.get(schema)
    if streams is None:
        declared = stream_declarations(schema)
        streams = _STREAMS[schema] = Streams(
            public=frozenset(name for name, d in declared.items() if d.public),
            conflate_by={
                name: d.conflate_by for name, d in declared.items() if d.conflate_by is not None
            },
        )
    return streams


@dataclass(frozen=True, slots=True)
class Analysis:
    """How one subscription document is shared (the same for every socket that sends it)."""

    digest: str
    public: bool
    executable: str  # the document to run (with the conflation key, if any)
    conflate_field: str | None  # response key of the root field carrying the key


@dataclass(frozen=True, slots=True)
class Plan:
    """One operation's way onto a shared stream: the analysis plus who runs it."""

    key: StreamKey
    analysis: Analysis
    variables: dict[str, Any] | None
    operation_name: str | None


def parse_limited(
    query: str, query_limits: QueryLimits, cache: DocumentCache | None
) -> DocumentNode:
    """``query`` parsed under the token limit, through the app's document cache when it has
    one (the execution that follows then finds it there); raises GraphQLError."""
    if cache is not None and cache.enabled:
        return cache.parse(query, query_limits.max_tokens)
    return parse(query, max_tokens=query_limits.max_tokens)


def is_query_or_mutation(
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
        document = parse_limited(query, query_limits, cache)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation is not OperationType.SUBSCRIPTION


def analyse(
    schema: GraphQLSchema | None,
    streams: Streams,
    query: str,
    operation_name: str | None,
    query_limits: QueryLimits,
    cache: DocumentCache | None = None,
) -> Analysis | None:
    """How a subscription document is shared, or None for Strawberry's own path.

    The document is parsed and checked against ``query_limits`` before graphql-core's
    validation, as on Strawberry's path: what is over a limit (or invalid) takes
    that path, which reports it.
    """
    try:
        document = parse_limited(query, query_limits, cache)
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
    return Analysis(digest, names <= streams.public, executable, conflate_field)


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


def pop_key(data: object, response_key: str | None) -> Hashable:
    if response_key is None or not isinstance(data, dict):
        return None
    value = data.get(response_key)
    if isinstance(value, dict):
        key: Hashable = value.pop(KEY_ALIAS, None)
        return key
    return None
