"""Prepared operations: a document known to be valid skips parsing and validation whole.

A frontend sends the same documents all day, and the document cache already
keeps each one's tree and validation result. What was left per request was the
ceremony around them: two lifecycle stages, eight extension hooks entered and
left, Strawberry's parse and validation steps, all to conclude that nothing
changed. For a request whose outcome is already known, :func:`prepare_operation`
does in plain calls exactly what those stages would have done (the cached tree,
the query limits compared and the cost priced from this request's variables,
validation's empty answer) and the schema goes straight on to execution.
The operation stage (persisted queries, metrics, error codes, masking) and the
execution stage (rate limits, tracing) run as always.

A request is prepared only when every hook of the skipped stages is known to
have nothing to say about it:

- every extension class hooking parsing or validation is in :data:`PREPARABLE`
  (an extension added later, tracing's spans, turns preparation off until it
  is listed here with what it needs);
- the text is in the document cache and was valid under the same rules;
- no NUL in the variables (:mod:`graphql_api.hardening.text_inputs`);
- no ``persistedQuery`` extension (automatic persisted queries take both
  stages: a request that registers a document needs the validation hook);
- the operation is named, or the document holds one
  (:class:`~graphql_api.hardening.error_codes.OperationSelection`);
- the limits let it through (cost and shape, checked every time).

Anything else runs both stages as before and gets the same answer, errors
included.
"""

from __future__ import annotations

from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from graphql_api.hardening.error_codes import (
    ErrorCodes,
    OperationSelection,
    lacks_operation_name,
    provided_operation_name,
)
from graphql_api.hardening.persisted_queries.extension import PersistedQueries
from graphql_api.hardening.query_limits.guard import DocumentLimits, TokenLimit
from graphql_api.hardening.text_inputs import NulInDocument, RefuseNulCharacters, nul_rule

PREPARABLE: frozenset[type[SchemaExtension]] = frozenset(
    {
        ErrorCodes,
        RefuseNulCharacters,
        OperationSelection,
        PersistedQueries,
        TokenLimit,
        DocumentLimits,
    }
)
"""Extension classes whose parsing and validation hooks change nothing for a
prepared request (each for the reason the module docstring gives)."""

_SKIPPED_STAGES = ("on_parse", "on_validate")
_NOT_PLANNED = -2
# Per tuple of extension classes: the position of DocumentLimits, or -1 when the
# request cannot be prepared with these extensions.
_PLANS: dict[tuple[type[SchemaExtension], ...], int] = {}


def document_limits_of(extensions: list[SchemaExtension]) -> DocumentLimits | None:
    """The request's :class:`DocumentLimits`, when its extensions allow preparing."""
    types = tuple(map(type, extensions))
    position = _PLANS.get(types, _NOT_PLANNED)
    if position == _NOT_PLANNED:
        position = _PLANS[types] = _plan(types)
    if position < 0:
        return None
    limits = extensions[position]
    assert isinstance(limits, DocumentLimits)
    return limits


def _plan(types: tuple[type[SchemaExtension], ...]) -> int:
    position = -1
    for index, extension_type in enumerate(types):
        if not any(_hooks(extension_type, stage) for stage in _SKIPPED_STAGES):
            continue  # skipping stages it does not hook changes nothing for it
        if extension_type not in PREPARABLE:
            return -1
        if extension_type is DocumentLimits:
            position = index
    return position


def _hooks(extension_type: type[SchemaExtension], stage: str) -> bool:
    return getattr(extension_type, stage) is not getattr(SchemaExtension, stage)


def prepare_operation(context: ExecutionContext, extensions: list[SchemaExtension]) -> bool:
    """Set up ``context`` as parsing and validation would, when their outcome is known
    (see the module docstring); False, with ``context`` untouched, otherwise."""
    limits = document_limits_of(extensions)
    if limits is None or limits.cache is None:
        return False
    if (context.operation_extensions or {}).get("persistedQuery") is not None:
        return False
    rule = nul_rule(context.variables)
    if rule is not NulInDocument:
        return False
    provided = provided_operation_name(context)
    return limits.prepare(
        (*context.validation_rules, rule),
        admits=lambda document: not lacks_operation_name(document, provided),
    )


__all__ = ["PREPARABLE", "document_limits_of", "prepare_operation"]
