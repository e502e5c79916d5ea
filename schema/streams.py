"""How a subscription's events may be shared, declared on the subscription field.

The WebSocket transport shares one execution of identical subscription documents
between connections, and may conflate a slow socket's backlog to the latest event
per key. Whether that is correct depends on the field, so the field says so:

    @strawberry.subscription(extensions=[StreamSharing(public=True, conflate_by="symbol")])
    async def ticks(...): ...

``public``: the events do not depend on who asks (beyond the role the permission
classes check), so every subscriber of the same role can share one execution. A
field without the declaration is user-scoped: only the same user's connections
share.

``conflate_by``: the field of each event (of the subscription's result type) that
keys conflation; a slow socket then gets the latest event per key instead of a
backlog, and a late joiner the latest event per key seen so far. ``None``: every
event is delivered (lossless).

The declaration is a Strawberry field extension that takes no part in resolving
(no ``resolve``), so it changes neither execution nor the printed SDL.
:func:`stream_declarations` reads them from a built schema, by GraphQL field name.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types.base import get_object_definition


class StreamSharing(FieldExtension):
    """Declares how the transport may share one subscription field's events."""

    def __init__(self, *, public: bool = False, conflate_by: str | None = None) -> None:
        self.public = public
        self.conflate_by = conflate_by

    def __repr__(self) -> str:
        return f"StreamSharing(public={self.public!r}, conflate_by={self.conflate_by!r})"


def stream_declarations(schema: strawberry.Schema) -> Mapping[str, StreamSharing]:
    """The :class:`StreamSharing` of each subscription root field that declares one,
    keyed by the field's GraphQL name (what a document selects)."""
    definition = (
        get_object_definition(schema.subscription) if schema.subscription is not None else None
    )
    if definition is None:
        return MappingProxyType({})
    names = schema.config.name_converter
    declared: dict[str, StreamSharing] = {}
    for field in definition.fields:
        for extension in field.extensions:
            if isinstance(extension, StreamSharing):
                declared[names.get_graphql_name(field)] = extension
    return MappingProxyType(declared)


__all__ = ["StreamSharing", "stream_declarations"]
